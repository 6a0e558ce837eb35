//! The SSL TLV's builder: client flags, verify result, and sub-TLVs.

use super::sink::Sink;
use super::{EmitError, MAX_SSL_SUB_TLVS};
use crate::TlvType;
use crate::layout::{MAX_LEN, SSL_HEAD, TLV_HEAD, tlv_head};

/// The SSL TLV: client flags, verify result and sub-TLVs such as the TLS version and cipher.
#[derive(Debug, Clone, Copy)]
pub struct SslBuilder<'a> {
    client: u8,
    verify: u32,
    subs: [(TlvType, &'a [u8]); MAX_SSL_SUB_TLVS],
    count: usize,
    overflow: bool,
    /// A sub-TLV whose content its type forbids (the parser would refuse it).
    invalid: Option<&'static str>,
}

impl<'a> SslBuilder<'a> {
    /// `client` is a set of [`crate::SslClient`] bits; `verify` is 0 when a client certificate
    /// was sent and verified.
    pub fn new(client: u8, verify: u32) -> Self {
        SslBuilder {
            client,
            verify,
            subs: [(TlvType(0), &[]); MAX_SSL_SUB_TLVS],
            count: 0,
            overflow: false,
            invalid: None,
        }
    }

    /// Any sub-TLV.
    #[must_use]
    pub fn sub(mut self, kind: TlvType, value: &'a [u8]) -> Self {
        if let Err(why) = crate::tlv::check_ssl_sub(kind, value) {
            self.invalid.get_or_insert(why);
            return self;
        }
        match self.subs.get_mut(self.count) {
            Some(slot) => {
                *slot = (kind, value);
                self.count += 1;
            }
            None => self.overflow = true,
        }
        self
    }
    /// `SSL_CLIENT_CERT`, DER.
    #[must_use]
    pub fn client_cert(self, der: &'a [u8]) -> Self {
        self.sub(TlvType::SSL_CLIENT_CERT, der)
    }

    fn subs(&self) -> &[(TlvType, &'a [u8])] {
        &self.subs[..self.count]
    }

    /// What building it got wrong, if anything: too many sub-TLVs, or a value its type forbids.
    pub(super) fn check(&self) -> Result<(), EmitError> {
        if self.overflow {
            return Err(EmitError::TooManyTlvs);
        }
        match self.invalid {
            Some(why) => Err(EmitError::NotEncodable(why)),
            None => Ok(()),
        }
    }

    /// The SSL TLV's value length; `TooLong` when a sub-TLV's value does not fit its length field.
    pub(super) fn value_len(&self) -> Result<usize, EmitError> {
        self.subs()
            .iter()
            .try_fold(SSL_HEAD, |len, (_, v)| match v.len() {
                n if n > MAX_LEN => Err(EmitError::TooLong),
                n => Ok(len + TLV_HEAD + n),
            })
    }

    /// Writes the SSL TLV's value: client, verify, then each sub-TLV.
    pub(super) fn write_value(&self, sink: &mut impl Sink) {
        sink.put(&[self.client]);
        sink.put(&self.verify.to_be_bytes());
        for (kind, value) in self.subs() {
            sink.put(&tlv_head(kind.0, value.len()));
            sink.put(value);
        }
    }
}

macro_rules! ssl_text_setters {
    ($($(#[$doc:meta])* $method:ident = $kind:ident,)*) => {
        impl<'a> SslBuilder<'a> {
            $($(#[$doc])* #[must_use] pub fn $method(self, v: &'a str) -> Self {
                self.sub(TlvType::$kind, v.as_bytes())
            })*
        }
    };
}
crate::tlv::ssl_text_subs!(ssl_text_setters);
