//! The XML stream: bytes from the socket framed into top-level elements, each read into a
//! stanza (by the fast readers or the full parser), and stanzas written back as bytes. XML and
//! XEP-0114 framing only: nothing here knows a role or a XEP beyond the stream itself.

pub(crate) mod fast_stanza;
pub(crate) mod fast_xml;
pub(crate) mod frame;
pub(crate) mod inbound;
pub(crate) mod reader;
pub(crate) mod short_answer;
pub(crate) mod stanza_parser;
pub(crate) mod writer;
