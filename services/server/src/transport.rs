//! What the server does at the transport level, below the handlers: socket
//! options of accepted connections, and the status codes of requests that
//! never reach a handler.

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

/// The connections accepted on `listener`, with `TCP_NODELAY` set.
///
/// Why: a unary gRPC answer leaves in two writes (headers and message, then
/// the trailers). With Nagle's algorithm on, the second small write waits
/// until the client ACKs the first, and clients delay their ACKs by about
/// 40 ms: every call that did real work took 44 ms. Every listener this
/// server opens goes through here.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Gives the client's own mistakes, caught by tonic before a handler runs,
/// the codes the gRPC status code guide gives them:
/// - a message over the size limit is RESOURCE_EXHAUSTED (tonic says
///   OUT_OF_RANGE);
/// - a body that is not the request message (malformed protobuf, a string
///   field that is not UTF-8, no message at all) is INVALID_ARGUMENT (tonic
///   says INTERNAL, which would blame the server).
///
/// These answers are trailers-only, so the status is in the headers.
pub fn remap_decode_errors<B>(mut res: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(res.headers()) else {
        return res;
    };
    let message = status.message();
    let code = match status.code() {
        Code::OutOfRange if message.starts_with("Error, decoded message length too large") => {
            Code::ResourceExhausted
        }
        Code::Internal
            if message.starts_with("failed to decode Protobuf message")
                || message == "Missing request message." =>
        {
            Code::InvalidArgument
        }
        _ => return res,
    };
    let fixed = Status::new(code, message.to_owned());
    if fixed.add_header(res.headers_mut()).is_err() {
        tracing::warn!("could not rewrite a decode error's status");
    }
    res
}
