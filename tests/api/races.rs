//! Concurrency: many logins at once, and reads racing a logout, on both stores.

use futures_util::future::join_all;

use crate::helpers::{spawn_app_with, Backend};
use crate::on_both_backends;

async fn hundreds_of_concurrent_logins_give_distinct_sessions_that_all_read_back(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let logins = join_all((0..300).map(|i| {
        let app = &app;
        async move { app.login(&format!("user{}", i % 7)).await.1 }
    }))
    .await;
    let distinct: std::collections::HashSet<_> = logins.iter().collect();
    assert_eq!(distinct.len(), 300);
    let reads = join_all(logins.iter().map(|c| app.profile(Some(c)))).await;
    assert!(reads.iter().all(|r| r.status() == 200));
}

async fn a_profile_read_racing_a_logout_never_brings_the_session_back(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for _ in 0..40 {
        let (_, cookie) = app.login("alice").await;
        let (_, _, _) = tokio::join!(
            app.profile(Some(&cookie)),
            app.logout(Some(&cookie)),
            app.profile(Some(&cookie)),
        );
        assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
    }
}

on_both_backends!(
    hundreds_of_concurrent_logins_give_distinct_sessions_that_all_read_back,
    a_profile_read_racing_a_logout_never_brings_the_session_back,
);
