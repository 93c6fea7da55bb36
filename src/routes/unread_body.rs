//! [`CloseUnreadBodies`]: the connection of a request whose chunked body was not read to its
//! end is closed after the answer, never drained.
//!
//! actix-http closes the connection after answering a request whose `Content-Length` body
//! was left unread, but a chunked body whose reader is gone is drained instead, for as long
//! as the client keeps sending: one client trickling a chunk now and then holds a connection
//! (and a file descriptor) forever, whatever the handler answered, a `408` for a body past
//! `REQUEST_BODY_TIMEOUT_MS` included. actix-web has no setting for it. This middleware keeps
//! such a body's reader alive until the answer is written, which makes actix-http close the
//! connection instead. Requests without `Transfer-Encoding` pass through untouched (no
//! allocation).

use std::{
    cell::RefCell,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use actix_web::{
    body::{BodySize, BoxBody, EitherBody, MessageBody},
    dev::{self, Service, ServiceRequest, ServiceResponse, Transform},
    error::PayloadError,
    http::header,
    web::Bytes,
    Error, HttpMessage,
};
use futures_util::{
    future::{ready, Either, FutureExt, LocalBoxFuture, Map, Ready},
    Stream,
};

/// The middleware; wrap it outermost on the `App`, so that every answer, a refusal by
/// another middleware included, holds the body's reader.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloseUnreadBodies;

impl<S, B> Transform<S, ServiceRequest> for CloseUnreadBodies
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, HeldBody>>;
    type Error = Error;
    type Transform = CloseUnreadBodiesService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CloseUnreadBodiesService { service }))
    }
}

/// [`CloseUnreadBodies`] around a service.
pub struct CloseUnreadBodiesService<S> {
    service: S,
}

type Answer<B> = Result<ServiceResponse<EitherBody<B, HeldBody>>, Error>;

impl<S, B> Service<ServiceRequest> for CloseUnreadBodiesService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, HeldBody>>;
    type Error = Error;
    #[allow(clippy::type_complexity)]
    type Future = Either<
        Map<S::Future, fn(Result<ServiceResponse<B>, Error>) -> Answer<B>>,
        LocalBoxFuture<'static, Answer<B>>,
    >;

    dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        // A request without a body has no payload at all: no header lookup for it.
        if matches!(req.parts().1, dev::Payload::None)
            || !req.headers().contains_key(header::TRANSFER_ENCODING)
        {
            return Either::Left(self.service.call(req).map(as_is::<B>));
        }
        let held = Rc::new(RefCell::new(req.take_payload()));
        req.set_payload(dev::Payload::Stream {
            payload: Box::pin(SharedPayload(Rc::clone(&held))),
        });
        let answer = self.service.call(req);
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            Ok(response.map_body(|_, body| {
                EitherBody::right(HeldBody {
                    body: body.boxed(),
                    _payload: held,
                })
            }))
        }))
    }
}

fn as_is<B>(response: Result<ServiceResponse<B>, Error>) -> Answer<B> {
    response.map(ServiceResponse::map_into_left_body)
}

/// The request body as the handler reads it, while the middleware keeps it too.
struct SharedPayload(Rc<RefCell<dev::Payload>>);

impl Stream for SharedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// An answer's body holding the request's body reader until it has been written.
pub struct HeldBody {
    body: BoxBody,
    _payload: Rc<RefCell<dev::Payload>>,
}

impl MessageBody for HeldBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
