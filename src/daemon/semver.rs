//! Semantic-version ranges as Piston clients send them (`*`, `3.x`, `3.10.0`, `^18`, `>=3.8 <4`),
//! following the node-semver grammar Piston matches with (`semver.satisfies`): `||` alternatives,
//! space-separated comparators, hyphen ranges, X-ranges, tilde and caret ranges. Pre-release tags
//! are not supported: runtime versions are plain releases.

use std::cmp::Ordering;
use std::fmt;

/// A release version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    /// A full version (`3.11.2`, a leading `v` or `=` allowed); partial versions are not versions.
    pub fn parse(text: &str) -> Option<Version> {
        match Partial::parse(text)? {
            Partial(Some(major), Some(minor), Some(patch)) => Some(Version {
                major,
                minor,
                patch,
            }),
            _ => None,
        }
    }

    /// The first `N.N` or `N.N.N` in free text (`Python 3.11.2`, `v20.1.0`, `5.2.15(1)-release`),
    /// padded to three parts.
    pub fn find_in(text: &str) -> Option<Version> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
                let end = text[i..]
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .map_or(text.len(), |e| i + e);
                let parts: Vec<&str> = text[i..end]
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .take(3)
                    .collect();
                if parts.len() >= 2 {
                    let n = |k: usize| parts.get(k).and_then(|p| p.parse().ok()).unwrap_or(0);
                    return Some(Version {
                        major: n(0),
                        minor: n(1),
                        patch: n(2),
                    });
                }
                i = end;
            }
            i += 1;
        }
        None
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A version with any trailing part missing or a wildcard (`3`, `3.x`, `*`).
#[derive(Debug, Clone, Copy)]
struct Partial(Option<u64>, Option<u64>, Option<u64>);

impl Partial {
    fn parse(text: &str) -> Option<Partial> {
        let t = text.trim().trim_start_matches(['v', '=']).trim();
        if t.is_empty() {
            return Some(Partial(None, None, None));
        }
        let mut parts = [None; 3];
        let mut wild = false;
        for (k, p) in t.split('.').enumerate() {
            if k >= 3 {
                return None;
            }
            if matches!(p, "x" | "X" | "*") {
                wild = true;
            } else if wild {
                return None;
            } else {
                parts[k] = Some(p.parse::<u64>().ok()?);
            }
        }
        Some(Partial(parts[0], parts[1], parts[2]))
    }

    /// The lowest version the partial covers.
    fn floor(self) -> Version {
        Version {
            major: self.0.unwrap_or(0),
            minor: self.1.unwrap_or(0),
            patch: self.2.unwrap_or(0),
        }
    }

    /// The first version above everything the partial covers; `None` for `*`.
    fn ceiling(self) -> Option<Version> {
        match self {
            Partial(None, _, _) => None,
            Partial(Some(m), None, _) => Some(v(m + 1, 0, 0)),
            Partial(Some(m), Some(n), None) => Some(v(m, n + 1, 0)),
            Partial(Some(m), Some(n), Some(p)) => Some(v(m, n, p + 1)),
        }
    }
}

fn v(major: u64, minor: u64, patch: u64) -> Version {
    Version {
        major,
        minor,
        patch,
    }
}

/// One bound: `version OP bound`.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtLeast(Version),
    Below(Version),
}

impl Bound {
    fn admits(self, version: Version) -> bool {
        match self {
            Bound::AtLeast(b) => version.cmp(&b) != Ordering::Less,
            Bound::Below(b) => version < b,
        }
    }
}

/// Whether `version` satisfies `range`; an unparsable range satisfies nothing (as in node-semver).
pub fn satisfies(version: Version, range: &str) -> bool {
    range.split("||").any(|set| match bounds(set) {
        Some(bounds) => bounds.iter().all(|b| b.admits(version)),
        None => false,
    })
}

/// The bounds of one space-separated comparator set.
fn bounds(set: &str) -> Option<Vec<Bound>> {
    let tokens = tokens(set);
    let mut out = Vec::new();
    if let [lo, dash, hi] = tokens.as_slice()
        && dash == "-"
    {
        out.push(Bound::AtLeast(Partial::parse(lo)?.floor()));
        out.extend(Partial::parse(hi)?.ceiling().map(Bound::Below));
        return Some(out);
    }
    for token in &tokens {
        comparator(token, &mut out)?;
    }
    Some(out)
}

/// Split on whitespace, gluing an operator to the version after it (`>= 3.8` is `>=3.8`).
fn tokens(set: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in set.split_whitespace() {
        match out.last_mut() {
            Some(last) if matches!(last.as_str(), "<" | "<=" | ">" | ">=" | "=" | "~" | "^") => {
                last.push_str(word);
            }
            _ => out.push(word.to_string()),
        }
    }
    out
}

fn comparator(token: &str, out: &mut Vec<Bound>) -> Option<()> {
    let op_len = token
        .find(|c: char| !matches!(c, '<' | '>' | '=' | '~' | '^'))
        .unwrap_or(token.len());
    let (op, rest) = token.split_at(op_len);
    let p = Partial::parse(rest)?;
    let floor = p.floor();
    match op {
        "" | "=" => {
            out.push(Bound::AtLeast(floor));
            out.extend(p.ceiling().map(Bound::Below));
        }
        ">=" => out.push(Bound::AtLeast(floor)),
        "<" => out.push(Bound::Below(floor)),
        ">" => match p.ceiling() {
            Some(c) => out.push(Bound::AtLeast(c)),
            None => out.push(Bound::Below(v(0, 0, 0))),
        },
        "<=" => out.extend(p.ceiling().map(Bound::Below)),
        "~" | "~>" => {
            out.push(Bound::AtLeast(floor));
            let upper = match p {
                Partial(None, _, _) => None,
                Partial(Some(m), None, _) => Some(v(m + 1, 0, 0)),
                Partial(Some(m), Some(n), _) => Some(v(m, n + 1, 0)),
            };
            out.extend(upper.map(Bound::Below));
        }
        "^" => {
            out.push(Bound::AtLeast(floor));
            // The upper bound keeps the left-most non-zero part fixed.
            let upper = match p {
                Partial(None, _, _) => None,
                Partial(Some(m), None, _) => Some(v(m + 1, 0, 0)),
                Partial(Some(0), Some(0), Some(pt)) => Some(v(0, 0, pt + 1)),
                Partial(Some(0), Some(n), _) => Some(v(0, n + 1, 0)),
                Partial(Some(m), _, _) => Some(v(m + 1, 0, 0)),
            };
            out.extend(upper.map(Bound::Below));
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(version: &str, range: &str) -> bool {
        satisfies(Version::parse(version).unwrap(), range)
    }

    #[test]
    fn wildcards_and_partials() {
        assert!(ok("3.11.2", "*"));
        assert!(ok("3.11.2", "x"));
        assert!(ok("3.11.2", ""));
        assert!(ok("3.11.2", "3"));
        assert!(ok("3.11.2", "3.x"));
        assert!(ok("3.11.2", "3.11.x"));
        assert!(ok("3.11.2", "3.11"));
        assert!(!ok("3.11.2", "3.10"));
        assert!(ok("3.11.2", "3.11.2"));
        assert!(ok("3.11.2", "v3.11.2"));
        assert!(!ok("3.11.2", "3.11.3"));
        assert!(!ok("3.11.2", "2.x"));
    }

    #[test]
    fn comparators_and_sets() {
        assert!(ok("3.11.2", ">=3.8"));
        assert!(ok("3.11.2", ">= 3.8 <4"));
        assert!(!ok("4.0.0", ">=3.8 <4"));
        assert!(ok("3.11.2", ">3.10"));
        assert!(!ok("3.10.9", ">3.10"));
        assert!(ok("3.10.9", "<=3.10"));
        assert!(!ok("3.11.0", "<=3.10"));
        assert!(ok("3.11.2", "2.x || 3.x"));
        assert!(ok("3.11.2", "3.0.0 - 3.11"));
        assert!(!ok("3.12.0", "3.0.0 - 3.11"));
    }

    #[test]
    fn tilde_and_caret() {
        assert!(ok("3.11.9", "~3.11.2"));
        assert!(!ok("3.12.0", "~3.11.2"));
        assert!(ok("3.99.0", "^3.11"));
        assert!(!ok("4.0.0", "^3.11"));
        assert!(ok("0.2.9", "^0.2.3"));
        assert!(!ok("0.3.0", "^0.2.3"));
        assert!(!ok("0.0.4", "^0.0.3"));
        assert!(ok("0.0.3", "^0.0.3"));
    }

    #[test]
    fn garbage_matches_nothing() {
        assert!(!ok("3.11.2", "latest"));
        assert!(!ok("3.11.2", "3.11.2.1"));
        assert!(!ok("3.11.2", "!3"));
    }

    #[test]
    fn versions_are_found_in_interpreter_banners() {
        let f = |t: &str| Version::find_in(t).map(|v| v.to_string());
        assert_eq!(f("Python 3.11.2\n").as_deref(), Some("3.11.2"));
        assert_eq!(f("v20.20.2\n").as_deref(), Some("20.20.2"));
        assert_eq!(
            f("GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)").as_deref(),
            Some("5.2.15")
        );
        assert_eq!(
            f("This is perl 5, version 36, subversion 0 (v5.36.0)").as_deref(),
            Some("5.36.0")
        );
        assert_eq!(f("nothing here"), None);
        assert_eq!(Version::parse("3.11"), None);
    }
}
