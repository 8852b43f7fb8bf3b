//! An env's app for tests that go through the gateway: a page for plain requests, a WebSocket
//! echo for upgrades, on a free loopback port.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves the app; returns its port. The page's body is `the app`.
pub async fn page_and_echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 8192];
                let seen = stream.peek(&mut head).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&head[..seen]).to_lowercase();
                if text.contains("upgrade: websocket") {
                    if let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await {
                        while let Some(Ok(message)) = socket.next().await {
                            if message.is_text() && socket.send(message).await.is_err() {
                                break;
                            }
                        }
                    }
                    return;
                }
                // One answer per connection: the gateway's pool never hands the upgrade of a
                // WebSocket to a connection that served a page.
                let _ = stream.read(&mut head).await;
                let body = "the app";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}
