//! X.509 subject names (RFC 5280 §4.1.2.6) from DER, for mTLS principals: just enough of a DER
//! reader (ITU-T X.690) to walk Certificate → TBSCertificate → subject, with every length checked.
//!
//! It only ever sees certificates that rustls/webpki already verified against the client CA, and
//! it refuses rather than guesses on anything unexpected (high tag numbers, indefinite or
//! oversized lengths, trailing bytes inside a TLV).

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;

/// A certificate's subject: the attributes in DER order, as (short name or dotted OID, value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub attributes: Vec<(String, String)>,
}

impl Subject {
    /// The most specific (last) common name.
    pub fn common_name(&self) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|(k, _)| k == "CN")
            .map(|(_, v)| v.as_str())
    }

    /// RFC 4514 string form: attributes in reverse order, specials escaped.
    pub fn rfc4514(&self) -> String {
        self.attributes
            .iter()
            .rev()
            .map(|(k, v)| format!("{k}={}", escape(v)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The principal name: `cert:<CN>`, or `cert:<DN>` without a CN; bytes outside printable
    /// ASCII, quotes, backslashes and `%` are percent-encoded so the mapping stays one-to-one,
    /// and so is `=` in a CN: a DN always has a literal `=`, so a CN `O=x` (`cert:O%3Dx`) cannot
    /// pass for the DN `O=x`. `None` when the name would exceed `MAX_PRINCIPAL` bytes: cutting
    /// it would let two subjects with a common prefix share a principal.
    pub fn principal(&self) -> Option<String> {
        let (raw, cn) = match self.common_name() {
            Some(cn) => (cn.to_string(), true),
            None => (self.rfc4514(), false),
        };
        let mut out = String::from("cert:");
        for b in raw.bytes() {
            let special = matches!(b, b'"' | b'\\' | b'%') || (cn && b == b'=');
            if (0x20..=0x7e).contains(&b) && !special {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        (out.len() <= MAX_PRINCIPAL).then_some(out)
    }
}

/// Longest principal name a certificate may give.
pub const MAX_PRINCIPAL: usize = 128;

fn escape(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One TLV: tag, contents, and the rest of the input after it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in the structures we read
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None; // indefinite (BER only) or absurd lengths
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, body, rest) = tlv(input)?;
    (tag == want).then_some((body, rest))
}

/// The subject of a DER certificate.
pub fn subject(cert_der: &[u8]) -> Option<Subject> {
    let (cert, _) = expect(cert_der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    rest = tlv(rest)?.2; // serialNumber
    rest = expect(rest, SEQUENCE)?.1; // signature algorithm
    rest = expect(rest, SEQUENCE)?.1; // issuer
    rest = expect(rest, SEQUENCE)?.1; // validity
    let (name, _) = expect(rest, SEQUENCE)?;
    parse_name(name)
}

fn parse_name(mut name: &[u8]) -> Option<Subject> {
    let mut attributes = Vec::new();
    while !name.is_empty() {
        let (mut rdn, rest) = expect(name, SET)?;
        name = rest;
        while !rdn.is_empty() {
            let (atv, rest) = expect(rdn, SEQUENCE)?;
            rdn = rest;
            let (oid, value) = expect(atv, OID)?;
            let (tag, body, trailing) = tlv(value)?;
            if !trailing.is_empty() {
                return None;
            }
            attributes.push((attribute_name(oid), string_value(tag, body)?));
        }
    }
    Some(Subject { attributes })
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        other => dotted(other),
    }
}

/// Dotted-decimal form of an OID body (X.690 §8.19).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
        if acc > u64::MAX >> 8 {
            return "oid.invalid".into();
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn string_value(tag: u8, body: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, NumericString
        0x0c | 0x13 | 0x16 | 0x12 => String::from_utf8(body.to_vec()).ok(),
        // TeletexString: in practice Latin-1.
        0x14 => Some(body.iter().map(|b| char::from(*b)).collect()),
        // BMPString: UCS-2 big endian.
        0x1e => {
            if body.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = body
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // Anything else: RFC 4514 §2.4 hex form.
        _ => Some(format!("#{:02x}{}", tag, super::hex(body))),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    fn cert(dn: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut name = DistinguishedName::new();
        for (t, v) in dn {
            name.push(t.clone(), *v);
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subjects_of_generated_certificates() {
        let der = cert(&[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Example, Inc."),
            (DnType::CommonName, "build bot"),
        ]);
        let s = subject(&der).unwrap();
        assert_eq!(s.common_name(), Some("build bot"));
        assert_eq!(s.rfc4514(), "CN=build bot,O=Example\\, Inc.,C=DE");
        assert_eq!(s.principal().unwrap(), "cert:build bot");
        let no_cn = subject(&cert(&[(DnType::OrganizationName, "Acme")])).unwrap();
        assert_eq!(no_cn.principal().unwrap(), "cert:O=Acme");
        let utf8 = subject(&cert(&[(DnType::CommonName, "Jürgen \"J\" 100%")])).unwrap();
        assert_eq!(utf8.principal().unwrap(), "cert:J%C3%BCrgen %22J%22 100%25");
        // A CN that looks like a DN is not that DN's principal.
        let fake = subject(&cert(&[(DnType::CommonName, "O=Acme")])).unwrap();
        assert_eq!(fake.principal().unwrap(), "cert:O%3DAcme");
        // Too long for a principal: none at all rather than a cut-off name two subjects share.
        let long = |tail: &str| {
            let cn = format!("{}{tail}", "x".repeat(130));
            subject(&cert(&[(DnType::CommonName, cn.as_str())]))
                .unwrap()
                .principal()
        };
        assert_eq!((long("a"), long("b")), (None, None));
    }

    #[test]
    fn oids_and_strings() {
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(dotted(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(
            string_value(0x1e, &[0, b'h', 0, b'i']).as_deref(),
            Some("hi")
        );
        assert_eq!(string_value(0x14, &[0xe9]).as_deref(), Some("é"));
        assert_eq!(string_value(0x04, &[1, 2]).as_deref(), Some("#040102"));
        assert_eq!(string_value(0x0c, &[0xff]), None);
    }

    #[test]
    fn truncated_and_malformed_input_is_refused() {
        let der = cert(&[(DnType::CommonName, "x")]);
        for cut in [0, 1, 2, 10, der.len() / 2, der.len() - 1] {
            // A cut certificate has an outer length that overruns the input.
            assert_eq!(subject(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(tlv(&[0x30, 0x80, 0, 0]), None, "indefinite length");
        assert_eq!(tlv(&[0x1f, 0x01, 0]), None, "high tag number");
        assert_eq!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]), None, "5-byte length");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = subject(&bytes);
            let _ = parse_name(&bytes);
        }

        #[test]
        fn mutated_certificates_never_panic(pos in 0usize..400, byte in any::<u8>()) {
            let mut der = cert(&[(DnType::CommonName, "mutant")]);
            let i = pos % der.len();
            der[i] = byte;
            if let Some(s) = subject(&der) {
                let _ = s.principal();
            }
        }
    }
}
