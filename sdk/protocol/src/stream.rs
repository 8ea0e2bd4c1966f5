//! Bodies as a chunked AEAD stream (the STREAM construction).
//!
//! A body is a sequence of records: `u32 (big-endian) header || ciphertext || tag`. The
//! header's top bit marks the final record; the low 31 bits give the length of
//! ciphertext plus tag. Record `i` is sealed with nonce `body || i || final`, so records
//! cannot be reordered, dropped, duplicated or truncated without an authentication
//! failure, and a stream that ends before a final record is refused.
//!
//! In MKE mode a record holds at most [`CHUNK_SIZE`] bytes and records are produced as
//! data arrives; with padded records (a response flag) each record's plaintext is padded
//! like an MTE message, so its length shows only a size bucket. In MTE mode the body is
//! exactly one final record holding the padded message.

use crate::aead::{MessageCipher, NonceKind, TAG_LEN, nonce};
use crate::header::Mode;
use crate::padding::{self, MAX_BUCKET};
use crate::registry::ErrorReason;

/// Largest plaintext of one MKE record.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Largest data of one padded MKE record: the largest bucket less its length field.
pub const PADDED_CHUNK_SIZE: usize = padding::MTE_MAX_MESSAGE;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 4;
const FINAL_BIT: u32 = 1 << 31;

/// Why a body stream could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A record failed to authenticate: wrong key, tampering, reordering or truncation.
    #[error("body record failed to authenticate")]
    Authentication,
    /// A record header announces an impossible length, or MTE padding is invalid.
    #[error("body record is malformed")]
    Malformed,
    /// The stream ended before its final record.
    #[error("body stream ended before its final record")]
    Truncated,
    /// Bytes follow the final record.
    #[error("body stream has data after its final record")]
    TrailingData,
    /// The body exceeds the configured limit or the MTE message cap.
    #[error("body exceeds its size limit")]
    TooLarge,
    /// Data was pushed after the stream was finished.
    #[error("body stream is already finished")]
    Finished,
    /// The body's length differs from the `content-length` its sealed head states.
    #[error("body length differs from the content-length in its head")]
    LengthMismatch,
}

impl BodyError {
    /// The registry reason a relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            BodyError::TooLarge => ErrorReason::BodyTooLarge,
            _ => ErrorReason::DecodeFailed,
        }
    }
}

/// Seals a body as it is produced. Memory is bounded by one chunk in MKE mode and by
/// the MTE cap in MTE mode.
pub struct BodyEncoder {
    cipher: MessageCipher,
    mode: Mode,
    /// MKE records carry padded plaintext.
    padded: bool,
    counter: u64,
    pending: Vec<u8>,
    finished: bool,
}

impl BodyEncoder {
    pub(crate) fn new(cipher: MessageCipher, mode: Mode) -> Self {
        BodyEncoder {
            cipher,
            mode,
            padded: false,
            counter: 0,
            pending: Vec::new(),
            finished: false,
        }
    }

    /// Pads every record's plaintext to its bucket (MKE only; MTE bodies are padded
    /// anyway).
    pub(crate) fn padding_records(mut self, padded: bool) -> Self {
        self.padded = padded && self.mode == Mode::Mke;
        self
    }

    /// The most data one record carries.
    fn chunk_size(&self) -> usize {
        if self.padded {
            PADDED_CHUNK_SIZE
        } else {
            CHUNK_SIZE
        }
    }

    /// Takes plaintext and appends any complete records to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), BodyError> {
        if self.finished {
            return Err(BodyError::Finished);
        }
        if self.mode == Mode::Mte {
            if self.pending.len() + data.len() > padding::MTE_MAX_MESSAGE {
                return Err(BodyError::TooLarge);
            }
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        let chunk_size = self.chunk_size();
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= chunk_size {
                // Whole chunks go straight from the input to the output.
                let (chunk, rest) = data.split_at(chunk_size);
                self.seal_record(chunk, false, out);
                data = rest;
                continue;
            }
            let room = chunk_size - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == chunk_size {
                let chunk = std::mem::take(&mut self.pending);
                self.seal_record(&chunk, false, out);
                self.pending = chunk;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Seals whatever is buffered as a record now (MKE), so that data which must reach
    /// the peer without waiting for a full chunk (a Server-Sent Event) is sent. No-op
    /// in MTE mode, whose body is a single record.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        if self.finished {
            return Err(BodyError::Finished);
        }
        if self.mode == Mode::Mke && !self.pending.is_empty() {
            let chunk = std::mem::take(&mut self.pending);
            self.seal_record(&chunk, false, out);
            self.pending = chunk;
            self.pending.clear();
        }
        Ok(())
    }

    /// Seals the final record. The encoder accepts nothing afterwards.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        if self.finished {
            return Err(BodyError::Finished);
        }
        self.finished = true;
        let pending = std::mem::take(&mut self.pending);
        match self.mode {
            Mode::Mke => self.seal_record(&pending, true, out),
            Mode::Mte => {
                let mut padded = Vec::new();
                padding::pad_into(&pending, &mut padded).ok_or(BodyError::TooLarge)?;
                self.seal_record(&padded, true, out);
            }
        }
        Ok(())
    }

    fn seal_record(&mut self, plaintext: &[u8], last: bool, out: &mut Vec<u8>) {
        // A padded record's data is at most PADDED_CHUNK_SIZE, so it always has a
        // bucket; padding goes straight into `out`, with no buffer per record.
        let record_len = if self.padded {
            padding::bucket_for(plaintext.len())
                .expect("a padded record's data is at most PADDED_CHUNK_SIZE")
        } else {
            plaintext.len()
        };
        let sealed_len = record_len + TAG_LEN;
        // Records never exceed CHUNK_SIZE or MAX_BUCKET plus a tag, far below 2^31.
        let header = (sealed_len as u32) | if last { FINAL_BIT } else { 0 };
        out.reserve(RECORD_HEADER_LEN + sealed_len);
        out.extend_from_slice(&header.to_be_bytes());
        let start = out.len();
        if self.padded {
            padding::pad_into(plaintext, out).expect("the bucket was found above");
        } else {
            out.extend_from_slice(plaintext);
        }
        let tag = self.cipher.seal_in_place(
            nonce(NonceKind::Body, self.counter, last),
            &mut out[start..],
        );
        out.extend_from_slice(&tag);
        self.counter += 1;
    }
}

/// Opens a body as its bytes arrive, in any split. Holds at most one record.
pub struct BodyDecoder {
    cipher: MessageCipher,
    mode: Mode,
    /// MKE records carry padded plaintext.
    padded: bool,
    counter: u64,
    header: [u8; RECORD_HEADER_LEN],
    header_len: usize,
    /// Expected sealed length and final flag of the record being read.
    current: Option<(usize, bool)>,
    record: Vec<u8>,
    finished: bool,
    limit: Option<u64>,
    total: u64,
    /// The first error; a failed stream stays failed.
    failed: Option<BodyError>,
}

impl BodyDecoder {
    pub(crate) fn new(cipher: MessageCipher, mode: Mode, limit: Option<u64>) -> Self {
        BodyDecoder {
            cipher,
            mode,
            padded: false,
            counter: 0,
            header: [0; RECORD_HEADER_LEN],
            header_len: 0,
            current: None,
            record: Vec::new(),
            finished: false,
            limit,
            total: 0,
            failed: None,
        }
    }

    /// Expects every record's plaintext padded (MKE only).
    pub(crate) fn padding_records(mut self, padded: bool) -> Self {
        self.padded = padded && self.mode == Mode::Mke;
        self
    }

    /// True once the final record has been opened.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Plaintext bytes produced so far.
    pub fn plaintext_len(&self) -> u64 {
        self.total
    }

    /// Takes received bytes and appends the plaintext of every record they complete.
    /// On error nothing of the failing record is appended and every later call fails
    /// with the same error: the caller must abandon the stream.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BodyError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = self.push_records(data, out);
        if let Err(error) = result {
            self.failed = Some(error);
        }
        result
    }

    fn push_records(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), BodyError> {
        while !data.is_empty() {
            if self.finished {
                return Err(BodyError::TrailingData);
            }
            let (sealed_len, last) = match self.current {
                Some(current) => current,
                None => {
                    let take = (RECORD_HEADER_LEN - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    if self.header_len < RECORD_HEADER_LEN {
                        return Ok(());
                    }
                    let current = self.read_header()?;
                    self.current = Some(current);
                    current
                }
            };
            let missing = sealed_len - self.record.len();
            if self.record.is_empty() && data.len() >= sealed_len {
                // The whole record is in this input: open it straight into `out`.
                let (record, rest) = data.split_at(sealed_len);
                self.open_record(record, last, out)?;
                data = rest;
            } else {
                let take = missing.min(data.len());
                self.record.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.record.len() == sealed_len {
                    let record = std::mem::take(&mut self.record);
                    self.open_record(&record, last, out)?;
                    self.record = record;
                    self.record.clear();
                }
            }
        }
        Ok(())
    }

    /// Declares the end of input; an error unless the final record was opened.
    pub fn finish(&self) -> Result<(), BodyError> {
        if let Some(error) = self.failed {
            Err(error)
        } else if self.finished {
            Ok(())
        } else {
            Err(BodyError::Truncated)
        }
    }

    fn read_header(&self) -> Result<(usize, bool), BodyError> {
        let header = u32::from_be_bytes(self.header);
        let last = header & FINAL_BIT != 0;
        let sealed_len = (header & !FINAL_BIT) as usize;
        let max_plaintext = match self.mode {
            Mode::Mke => CHUNK_SIZE,
            Mode::Mte => MAX_BUCKET,
        };
        let plaintext_len = sealed_len
            .checked_sub(TAG_LEN)
            .ok_or(BodyError::Malformed)?;
        let well_formed = plaintext_len <= max_plaintext
            // Only the final record may be empty; MTE bodies are a single record.
            && (last || plaintext_len > 0)
            && (self.mode == Mode::Mke || last);
        if !well_formed {
            return Err(BodyError::Malformed);
        }
        // Padded records are checked against the limit once their data length is known.
        if let Some(limit) = self.limit
            && self.mode == Mode::Mke
            && !self.padded
            && self.total + plaintext_len as u64 > limit
        {
            return Err(BodyError::TooLarge);
        }
        Ok((sealed_len, last))
    }

    fn open_record(
        &mut self,
        record: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), BodyError> {
        let (ciphertext, tag) = record.split_at(record.len() - TAG_LEN);
        let start = out.len();
        out.extend_from_slice(ciphertext);
        let opened = self.cipher.open_in_place(
            nonce(NonceKind::Body, self.counter, last),
            &mut out[start..],
            tag,
        );
        if opened.is_err() {
            out.truncate(start);
            return Err(BodyError::Authentication);
        }
        if self.mode == Mode::Mte || self.padded {
            let Some(data_len) = padding::unpad(&out[start..]).map(<[u8]>::len) else {
                out.truncate(start);
                return Err(BodyError::Malformed);
            };
            if data_len == 0 && !last {
                // As unpadded: only the final record may carry no data.
                out.truncate(start);
                return Err(BodyError::Malformed);
            }
            out.copy_within(start + 4..start + 4 + data_len, start);
            out.truncate(start + data_len);
            if self
                .limit
                .is_some_and(|limit| self.total + data_len as u64 > limit)
            {
                out.truncate(start);
                return Err(BodyError::TooLarge);
            }
        }
        self.total += (out.len() - start) as u64;
        self.counter += 1;
        self.current = None;
        self.header_len = 0;
        self.finished = last;
        Ok(())
    }
}
