//! Mutual challenge–response authentication with HMAC-SHA256.
//!
//! ```text
//! server -> client   Challenge { magic, nonce_s }
//! client -> server   Answer    { nonce_c, HMAC(key, "client" label | nonce_s | nonce_c) }
//! server -> client   Verdict   Welcome { HMAC(key, "server" label | nonce_c | nonce_s) } | Refused
//! ```
//!
//! Each side proves it holds the key over a fresh random nonce of the other
//! side, so a recorded exchange cannot be replayed, and the two proofs carry
//! different labels, so one side's proof cannot be reflected back as the
//! other's. Tags are checked in constant time (`Mac::verify_slice`). The server
//! serves nothing before a client's proof checks out; the client sends nothing
//! but its proof before the server's proof checks out.

use std::io::BufReader;
use std::net::TcpStream;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::protocol::{
    self, Answer, Challenge, FrameError, HANDSHAKE_MAX, MAGIC, Verdict, read_frame, write_frame,
};

type HmacSha256 = Hmac<Sha256>;

const CLIENT_LABEL: &[u8] = b"mp manager: client proof\0";
const SERVER_LABEL: &[u8] = b"mp manager: server proof\0";

/// `N` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| {
        std::io::Error::other(format!(
            "the operating system gave no random bytes for the manager's handshake: {e}"
        ))
    })?;
    Ok(out)
}

fn mac(key: &[u8], label: &[u8], first: &[u8; 32], second: &[u8; 32]) -> Option<HmacSha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(label);
    mac.update(first);
    mac.update(second);
    Some(mac)
}

fn prove(key: &[u8], label: &[u8], first: &[u8; 32], second: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Some(mac) = mac(key, label, first, second) {
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

fn verify(key: &[u8], label: &[u8], first: &[u8; 32], second: &[u8; 32], tag: &[u8]) -> bool {
    mac(key, label, first, second).is_some_and(|mac| mac.verify_slice(tag).is_ok())
}

/// Why the server ended a handshake.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The client does not know the key.
    WrongKey,
    /// The client broke the protocol or went away; the text says how.
    Broken(String),
}

/// The server's side: `Ok` once the client proved the key (and was sent the
/// server's proof).
pub(crate) fn server_side(
    reader: &mut BufReader<TcpStream>,
    key: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), Refusal> {
    let broken = |e: FrameError| Refusal::Broken(e.to_string());
    let server_nonce: [u8; 32] =
        random_bytes().map_err(|e| Refusal::Broken(format!("no server nonce: {e}")))?;
    let challenge = Challenge {
        magic: MAGIC,
        nonce: server_nonce,
    };
    write_frame(reader.get_ref(), &challenge, scratch, HANDSHAKE_MAX).map_err(broken)?;
    let mut buf = Vec::new();
    if !read_frame(reader, &mut buf, HANDSHAKE_MAX).map_err(broken)? {
        return Err(Refusal::Broken(
            "it closed the connection before authenticating".into(),
        ));
    }
    let answer: Answer =
        protocol::decode(&buf).map_err(|_| Refusal::Broken("its handshake is malformed".into()))?;
    if !verify(key, CLIENT_LABEL, &server_nonce, &answer.nonce, &answer.mac) {
        let _ = write_frame(reader.get_ref(), &Verdict::Refused, scratch, HANDSHAKE_MAX);
        return Err(Refusal::WrongKey);
    }
    let welcome = Verdict::Welcome {
        mac: prove(key, SERVER_LABEL, &answer.nonce, &server_nonce),
    };
    write_frame(reader.get_ref(), &welcome, scratch, HANDSHAKE_MAX).map_err(broken)
}

/// Why the client's side of a handshake failed.
#[derive(Debug)]
pub(crate) enum ClientFailure {
    /// The keys differ (the server refused us, or could not prove the key itself).
    WrongKey,
    /// The peer does not speak this protocol.
    NotAManager(String),
    Frame(FrameError),
}

/// The client's side: `Ok` once both sides proved the key.
pub(crate) fn client_side(
    reader: &mut BufReader<TcpStream>,
    key: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), ClientFailure> {
    let mut buf = Vec::new();
    let not_manager = |what: String| ClientFailure::NotAManager(what);
    match read_frame(reader, &mut buf, HANDSHAKE_MAX) {
        Ok(true) => {}
        Ok(false) => return Err(ClientFailure::Frame(FrameError::Eof)),
        Err(FrameError::TooLarge { .. }) => {
            return Err(not_manager("its first message is not a manager's".into()));
        }
        Err(e) => return Err(ClientFailure::Frame(e)),
    }
    let challenge: Challenge = protocol::decode(&buf)
        .map_err(|_| not_manager("its first message is not a manager's".into()))?;
    if challenge.magic != MAGIC {
        return Err(not_manager(
            "it speaks another protocol, or another version of mp's manager protocol".into(),
        ));
    }
    let client_nonce: [u8; 32] =
        random_bytes().map_err(|e| ClientFailure::Frame(FrameError::Io(e)))?;
    let answer = Answer {
        nonce: client_nonce,
        mac: prove(key, CLIENT_LABEL, &challenge.nonce, &client_nonce),
    };
    write_frame(reader.get_ref(), &answer, scratch, HANDSHAKE_MAX).map_err(ClientFailure::Frame)?;
    match read_frame(reader, &mut buf, HANDSHAKE_MAX) {
        Ok(true) => {}
        // A server that refuses may close before we read its verdict.
        Ok(false) => return Err(ClientFailure::WrongKey),
        Err(e) => return Err(ClientFailure::Frame(e)),
    }
    match protocol::decode::<Verdict>(&buf) {
        Ok(Verdict::Welcome { mac })
            if verify(key, SERVER_LABEL, &client_nonce, &challenge.nonce, &mac) =>
        {
            Ok(())
        }
        Ok(_) => Err(ClientFailure::WrongKey),
        Err(_) => Err(not_manager("its handshake is malformed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_check_and_differ_by_label_and_key() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let tag = prove(b"key", CLIENT_LABEL, &a, &b);
        assert!(verify(b"key", CLIENT_LABEL, &a, &b, &tag));
        assert!(!verify(b"key", SERVER_LABEL, &a, &b, &tag));
        assert!(!verify(b"other", CLIENT_LABEL, &a, &b, &tag));
        assert!(!verify(b"key", CLIENT_LABEL, &b, &a, &tag));
        assert!(!verify(b"key", CLIENT_LABEL, &a, &b, &tag[..31]));
        // The empty key is a key like any other.
        let tag = prove(b"", CLIENT_LABEL, &a, &b);
        assert!(verify(b"", CLIENT_LABEL, &a, &b, &tag));
    }

    #[test]
    fn nonces_are_random() {
        let a: [u8; 32] = random_bytes().unwrap();
        let b: [u8; 32] = random_bytes().unwrap();
        assert_ne!(a, b);
    }
}
