//! A response body made of shared pieces: the env list's rows are sent as they are kept, never
//! joined into one string first.
//!
//! The list fragment is about 1 MiB with 1,000 envs. Joining its rows, handing the result to
//! tera and appending the out-of-band fragments copied it five times per request, each copy a
//! fresh megabyte the allocator mapped and unmapped again: page faults were most of the
//! dashboard's time under load. Here a body is the rendered template cut where its rows go,
//! with the rows' shared [`Bytes`] in between; actix copies them into its 32 KiB write buffer
//! as the socket drains, so a request allocates nothing the size of the list.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;

/// Where the rows go in a rendered template: what the template gets as `rows`. It starts with
/// `<`, which tera escapes in every value it renders, so no text from a user or a ConfigMap
/// can contain it; only the template's own unescaped `{{ rows | safe }}` puts it there.
pub const ROWS_MARKER: &str = "<\u{0}ephemerator-rows\u{0}>";

/// Where a viewer's CSRF token goes in an env row every such viewer shares (a sleeping env's
/// Wake button: see [`crate::fragment_cache::SharedList`]). Like [`ROWS_MARKER`] it starts
/// with `<`, so only the template's own unescaped `{{ token_marker | safe }}` can put it there.
pub const TOKEN_MARKER: &str = "<\u{0}ephemerator-token\u{0}>";

/// A body of pieces sent in order, with its length known up front (so it has a
/// `Content-Length`, as a one-piece body does).
#[derive(Debug, Default, Clone)]
pub struct Chunked {
    pieces: VecDeque<Bytes>,
    size: u64,
}

impl Chunked {
    /// An empty body.
    pub fn new() -> Self {
        Chunked::default()
    }

    /// Appends a piece (an empty one is dropped).
    pub fn push(&mut self, piece: impl Into<Bytes>) {
        let piece = piece.into();
        if !piece.is_empty() {
            self.size += piece.len() as u64;
            self.pieces.push_back(piece);
        }
    }

    /// Appends `rendered` with `rows` where its [`ROWS_MARKER`] is (the rows are left out if it
    /// has none: a template that shows no list).
    pub fn push_spliced(&mut self, rendered: String, rows: &[Bytes]) {
        match rendered.find(ROWS_MARKER) {
            Some(at) => {
                let mut before = Bytes::from(rendered);
                let after = before.split_off(at + ROWS_MARKER.len());
                before.truncate(at);
                self.push(before);
                for row in rows {
                    self.push(row.clone());
                }
                self.push(after);
            }
            None => self.push(rendered),
        }
    }

    /// The bytes of the whole body.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The whole body in one piece (for tests and callers that need a string).
    pub fn to_bytes(&self) -> Bytes {
        let mut all = Vec::with_capacity(self.size as usize);
        for piece in &self.pieces {
            all.extend_from_slice(piece);
        }
        Bytes::from(all)
    }
}

impl MessageBody for Chunked {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        Poll::Ready(this.pieces.pop_front().map(|piece| {
            this.size -= piece.len() as u64;
            Ok(piece)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_where_the_marker_is_and_the_size_counts_every_piece() {
        let mut body = Chunked::new();
        let rows = [Bytes::from("<li>a</li>"), Bytes::from("<li>b</li>")];
        body.push_spliced(format!("<ul>{ROWS_MARKER}</ul>"), &rows);
        body.push("<p>quota</p>");
        assert_eq!(body.to_bytes(), "<ul><li>a</li><li>b</li></ul><p>quota</p>");
        assert_eq!(body.len(), body.to_bytes().len() as u64);
    }

    #[test]
    fn a_template_without_the_marker_is_kept_whole_and_its_rows_left_out() {
        let mut body = Chunked::new();
        body.push_spliced("<p>No environments yet.</p>".into(), &[Bytes::from("x")]);
        assert_eq!(body.to_bytes(), "<p>No environments yet.</p>");
    }

    #[test]
    fn an_escaped_marker_is_no_marker() {
        for marker in [ROWS_MARKER, TOKEN_MARKER] {
            let mut context = tera::Context::new();
            context.insert("who", marker);
            let rendered = tera::Tera::one_off("<b>{{ who }}</b>", &context, true).unwrap();
            assert!(!rendered.contains(marker), "{rendered:?}");
        }
    }

    #[actix_web::test]
    async fn actix_sends_it_whole_with_its_length() {
        let mut body = Chunked::new();
        body.push("one ");
        body.push(Bytes::from_static(b"two"));
        assert_eq!(body.size(), BodySize::Sized(7));
        let sent = actix_web::body::to_bytes(body).await.unwrap();
        assert_eq!(sent, "one two");
    }
}
