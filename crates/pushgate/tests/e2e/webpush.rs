//! RFC 8291 message encryption (`aes128gcm`, RFC 8188, one record) on aws-lc-rs: the app
//! server encrypts to the client's P-256 key and auth secret, the client decrypts what the
//! provider relayed. Checked against RFC 8291 Appendix A in `e2e_unified_push.rs`.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

/// RFC 8188 §2.1: salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid (the 65-byte P-256 point).
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// The record size written in the header.
const RECORD_SIZE: u32 = 4096;

/// The client's (user agent's) keys, as Conversations creates them for each app instance.
pub struct UserAgentKeys {
    private: PrivateKey,
    /// The uncompressed P-256 public key (65 bytes), `p256dh` of the subscription.
    pub public: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: [u8; 16],
}

impl UserAgentKeys {
    /// Fresh keys.
    pub fn generate() -> Self {
        let private = PrivateKey::generate(&ECDH_P256).expect("P-256 key");
        let mut auth = [0u8; 16];
        SystemRandom::new().fill(&mut auth).expect("random");
        Self::from_parts(private, auth)
    }

    /// Keys from a raw private scalar (test vectors).
    pub fn from_private(private: &[u8], auth: [u8; 16]) -> Self {
        let private = PrivateKey::from_private_key(&ECDH_P256, private).expect("P-256 scalar");
        Self::from_parts(private, auth)
    }

    fn from_parts(private: PrivateKey, auth: [u8; 16]) -> Self {
        let public = private
            .compute_public_key()
            .expect("public key")
            .as_ref()
            .to_vec();
        Self {
            private,
            public,
            auth,
        }
    }

    /// Decrypts one RFC 8291 message; `None` when it does not authenticate or is malformed.
    pub fn decrypt(&self, message: &[u8]) -> Option<Vec<u8>> {
        if message.len() < HEADER_LEN + TAG_LEN || message[20] != 65 {
            return None;
        }
        let salt = &message[..16];
        let sender_public = &message[21..HEADER_LEN];
        let secret = ecdh(&self.private, sender_public)?;
        let (key, nonce) = content_keys(&secret, &self.auth, &self.public, sender_public, salt);
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).ok()?);
        let mut record = message[HEADER_LEN..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut record,
            )
            .ok()?;
        // RFC 8188 §2: the last record ends with 0x02 followed by zero padding.
        let delimiter = plain.iter().rposition(|b| *b != 0)?;
        (plain[delimiter] == 2).then(|| plain[..delimiter].to_vec())
    }
}

fn ecdh(private: &PrivateKey, peer_public: &[u8]) -> Option<Vec<u8>> {
    agreement::agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, peer_public),
        (),
        |secret| Ok(secret.to_vec()),
    )
    .ok()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for part in parts {
        context.update(part);
    }
    context.sign().as_ref().to_vec()
}

/// RFC 8291 §3.4 and RFC 8188 §2.2/§2.3: the content encryption key and the nonce.
fn content_keys(
    ecdh_secret: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> ([u8; 16], [u8; 12]) {
    // HKDF(auth, ecdh, "WebPush: info" ‖ 0 ‖ ua_public ‖ as_public, 32); one HMAC each for
    // extract and for an expand of at most 32 bytes (RFC 5869 §2.3, T(1)).
    let prk_key = hmac_sha256(auth, &[ecdh_secret]);
    let ikm = hmac_sha256(&prk_key, &[b"WebPush: info\0", ua_public, as_public, &[1]]);
    let prk = hmac_sha256(salt, &[&ikm]);
    let cek = hmac_sha256(&prk, &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce = hmac_sha256(&prk, &[b"Content-Encoding: nonce\0", &[1]]);
    let mut key = [0u8; 16];
    key.copy_from_slice(&cek[..16]);
    let mut iv = [0u8; 12];
    iv.copy_from_slice(&nonce[..12]);
    (key, iv)
}

/// Encrypts `plaintext` for `ua_public`/`auth` with a fresh sender key and salt: the body an
/// app server POSTs (`Content-Encoding: aes128gcm`). Its length is
/// `HEADER_LEN + plaintext.len() + 1 + TAG_LEN`.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let sender = PrivateKey::generate(&ECDH_P256).expect("P-256 key");
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).expect("random");
    encrypt_with(&sender, &salt, ua_public, auth, plaintext)
}

/// [`encrypt`] with a given sender key and salt (test vectors).
pub fn encrypt_with(
    sender: &PrivateKey,
    salt: &[u8; 16],
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let sender_public = sender.compute_public_key().expect("public key");
    let sender_public = sender_public.as_ref();
    let secret = ecdh(sender, ua_public).expect("ECDH with the client's key");
    let (key, nonce) = content_keys(&secret, auth, ua_public, sender_public, salt);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).expect("AES key"));
    let mut record = plaintext.to_vec();
    record.push(2);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut record,
    )
    .expect("seal");
    let mut message = Vec::with_capacity(HEADER_LEN + record.len());
    message.extend_from_slice(salt);
    message.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    message.push(65);
    message.extend_from_slice(sender_public);
    message.extend_from_slice(&record);
    message
}
