//! ELF headers, read without executing anything: the machine a binary is for and the dynamic
//! loader (`PT_INTERP`) it names (elf(5)).

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// ELF `e_machine` of the machine this binary runs on (elf(5), `EM_*`).
fn host_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        "riscv64" => Some(243),
        "x86" => Some(3),
        "arm" => Some(40),
        _ => None,
    }
}

/// Check that `path` is a little-endian ELF for this machine and return its `PT_INTERP` (the
/// dynamic loader), if any. Layout from elf(5).
pub(super) fn elf_interpreter(path: &Path) -> Result<Option<String>, String> {
    // Headers and the loader path sit in the first page of every linker output we know; 64 KiB
    // avoids reading a 100 MB node binary whole.
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut bytes))
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    let not = |what: &str| format!("{} is {what}", path.display());
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return Err(not("neither an ELF binary nor a #! script"));
    }
    let is64 = match bytes[4] {
        1 => false,
        2 => true,
        _ => return Err(not("an ELF of unknown class")),
    };
    if bytes[5] != 1 {
        return Err(not("a big-endian ELF"));
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let machine = u16_at(18).unwrap_or_default();
    if Some(machine) != host_machine() {
        return Err(not(&format!(
            "an ELF for machine {machine}, not {}",
            std::env::consts::ARCH
        )));
    }
    // (program header table offset, entry size, count) sit at different offsets per class.
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c).map(u64::from), u16_at(0x2a), u16_at(0x2c))
    };
    let (Some(phoff), Some(size), Some(count)) = (phoff, phentsize, phnum) else {
        return Err(not("a truncated ELF"));
    };
    for i in 0..usize::from(count) {
        let Some(base) = usize::try_from(phoff)
            .ok()
            .map(|o| o + i * usize::from(size))
        else {
            break;
        };
        const PT_INTERP: u32 = 3;
        if u32_at(base) != Some(PT_INTERP) {
            continue;
        }
        let (off, len) = if is64 {
            (u64_at(base + 8), u64_at(base + 0x20))
        } else {
            (
                u32_at(base + 4).map(u64::from),
                u32_at(base + 0x10).map(u64::from),
            )
        };
        let range = off
            .zip(len)
            .and_then(|(o, l)| Some(usize::try_from(o).ok()?..usize::try_from(o + l).ok()?));
        let Some(raw) = range.and_then(|r| bytes.get(r)) else {
            return Err(not("an ELF with a truncated PT_INTERP"));
        };
        let loader = String::from_utf8_lossy(raw)
            .trim_end_matches('\0')
            .to_string();
        return Ok(Some(loader));
    }
    Ok(None)
}
