//! `/proc/<pid>/mountinfo` lines (proc(5)): mount root, mount point, file system type, super
//! options. Shared by the cgroup detection and `doctor`.

/// One mountinfo line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    /// The root of the mount within its file system (field 4).
    pub root: String,
    /// Where it is mounted (field 5).
    pub point: String,
    /// The file system type (first field after ` - `).
    pub fstype: String,
    /// The super-block options (third field after ` - `).
    pub options: String,
}

/// Every well-formed line of a mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                root: unescape(left.get(3)?),
                point: unescape(left.get(4)?),
                fstype: right.first()?.to_string(),
                options: right.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let oct = bytes
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], oct) {
            (b'\\', Some(o)) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let text = "36 35 98:0 /mnt\\040x /a\\134b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\nbroken line\n";
        let m = parse(text);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].root.as_str(), m[0].point.as_str()),
            ("/mnt x", "/a\\b")
        );
        assert_eq!(
            (m[0].fstype.as_str(), m[0].options.as_str()),
            ("ext3", "rw,errors=continue")
        );
    }
}
