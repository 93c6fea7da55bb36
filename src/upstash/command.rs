//! One Redis command as the REST API takes it: a JSON array of strings, name first.

use std::borrow::Cow;

use serde::Serialize;

/// A Redis command; every argument is sent as a JSON string (the REST API's safe form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Command<'a> {
    parts: Vec<Cow<'a, str>>,
}

impl<'a> Command<'a> {
    /// A command named `name` with no arguments yet.
    pub fn new(name: &'static str) -> Self {
        let mut parts = Vec::with_capacity(6);
        parts.push(Cow::Borrowed(name));
        Self { parts }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl Into<Cow<'a, str>>) -> Self {
        self.parts.push(arg.into());
        self
    }

    /// Appends an integer argument (sent as a string).
    pub fn int(self, n: i64) -> Self {
        self.arg(n.to_string())
    }

    /// The command name, for logs and metrics.
    pub fn name(&self) -> &str {
        &self.parts[0]
    }

    /// Name and arguments, in order.
    pub fn parts(&self) -> &[Cow<'a, str>] {
        &self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_a_json_array_of_strings() {
        let cmd = Command::new("SET")
            .arg("k")
            .arg(String::from("v"))
            .arg("EX")
            .int(900);
        assert_eq!(
            serde_json::to_string(&cmd).unwrap(),
            r#"["SET","k","v","EX","900"]"#
        );
        assert_eq!(cmd.name(), "SET");
    }
}
