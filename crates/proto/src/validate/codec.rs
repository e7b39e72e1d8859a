//! The codec every generated service uses: prost's, plus the contract's
//! rules checked on each request a server decodes. Doing it in the codec
//! means no handler, present or future, can forget it, and a refused
//! request never reaches the service's code.

use std::marker::PhantomData;

use bytes::Buf;
use prost::Message;
use prost_reflect::DynamicMessage;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};

use super::{contracts, invalid_argument};

/// `application/grpc+proto` with request validation; named by build.rs as
/// the `codec_path` of every service.
#[derive(Debug, Clone)]
pub struct ValidatingCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ValidatingCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ValidatingCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + prost::Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = ValidatingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ValidatingDecoder(PhantomData)
    }
}

/// Decodes `U` and, when `U` is a request with rules, checks them.
#[derive(Debug)]
pub struct ValidatingDecoder<U>(PhantomData<U>);

impl<U: Message + prost::Name + Default> Decoder for ValidatingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // Answers decoded by a client find no plan: only requests are checked.
        let Some(plan) = contracts().request_plan(&U::full_name()) else {
            return U::decode(buf).map(Some).map_err(decode_error);
        };
        let bytes = buf.copy_to_bytes(buf.remaining());
        let item = U::decode(bytes.clone()).map_err(decode_error)?;
        let dynamic =
            DynamicMessage::decode(plan.descriptor.clone(), bytes).map_err(decode_error)?;
        let violations = contracts().check(&dynamic);
        if violations.is_empty() {
            Ok(Some(item))
        } else {
            Err(invalid_argument(&violations))
        }
    }
}

/// As prost's codec: a message that does not parse is INTERNAL, per
/// https://github.com/grpc/grpc/blob/master/doc/statuscodes.md.
fn decode_error(error: prost::DecodeError) -> Status {
    Status::internal(error.to_string())
}
