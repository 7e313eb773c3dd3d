//! Classic BPF for seccomp: a binary search over system call numbers.
//!
//! seccompiler 0.5 emits a linear chain (about 5 instructions per syscall, one match action per
//! filter); the allowlist the interpreters need would cross the ~500-instruction attach-cost cliff
//! measured in PLATFORM.md §1. Here the syscall number space is cut into runs that share one
//! outcome, and a balanced tree of `jge` nodes finds the run in about log2(runs) steps. Leaves are
//! a `ret` or a short argument check, so every path ends in its own `ret` and no shared-return
//! jumps can go out of range. Runs that simply allow are also what the kernel's per-filter action
//! cache (`seccomp_cache_prepare_bitmap`, Linux 5.11) can prove constant, so those calls skip the
//! filter entirely at run time.

use std::collections::BTreeMap;

use seccompiler::sock_filter;

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`, linux/audit.h).
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// x32 system calls are x86_64 numbers with this bit set (`__X32_SYSCALL_BIT`).
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `struct seccomp_data` offsets: `nr` (int), `arch` (u32), `instruction_pointer`, `args[6]`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// `BPF_LD | BPF_W | BPF_ABS` (linux/bpf_common.h: 0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;

/// What happens for one syscall number (or a run of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// Return this seccomp action.
    Ret(u32),
    /// The low 32 bits of argument `arg` in `values` → `hit`, otherwise `miss`. The kernel reads
    /// `int`/`unsigned int` arguments (socket domain, ioctl request, persona) as 32 bits, so
    /// comparing only the low word is exactly what it acts on: high garbage bits cannot sneak past.
    ArgIn {
        arg: u32,
        values: Vec<u32>,
        hit: u32,
        miss: u32,
    },
    /// Some alternative whose every `(arg, value)` pair matches (low 32 bits) → `hit`, otherwise
    /// `miss`: `socket(AF_NETLINK, _, NETLINK_ROUTE)` next to plain families.
    AnyOf {
        alts: Vec<Vec<(u32, u32)>>,
        hit: u32,
        miss: u32,
    },
    /// The low 32 bits of argument `arg` share no bit with `mask` → `clear`, otherwise `set`.
    ArgMaskClear {
        arg: u32,
        mask: u32,
        clear: u32,
        set: u32,
    },
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A whole program: arch check, x32 check, then the search tree over `rules`. Numbers without a
/// rule get `default`; a foreign architecture or the x32 bit gets `hard`.
pub(crate) fn assemble(rules: &BTreeMap<u32, Leaf>, default: u32, hard: u32) -> Vec<sock_filter> {
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, hard),
        stmt(BPF_LD_W_ABS, OFF_NR),
        // Unsigned compare: catches the x32 bit and negative numbers alike.
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, hard),
    ];
    prog.extend(tree(&runs(rules, default)));
    prog
}

/// Cut `[0, X32_SYSCALL_BIT)` into runs `(first number, leaf)`, merging neighbours that return the
/// same action.
fn runs(rules: &BTreeMap<u32, Leaf>, default: u32) -> Vec<(u32, Leaf)> {
    let mut out: Vec<(u32, Leaf)> = Vec::new();
    let mut push = |start: u32, leaf: Leaf| {
        if out
            .last()
            .is_some_and(|(_, last)| *last == leaf && matches!(leaf, Leaf::Ret(_)))
        {
            return;
        }
        out.push((start, leaf));
    };
    let mut next = 0;
    for (&nr, leaf) in rules.range(..X32_SYSCALL_BIT) {
        if nr > next {
            push(next, Leaf::Ret(default));
        }
        push(nr, leaf.clone());
        next = nr + 1;
    }
    if next < X32_SYSCALL_BIT {
        push(next, Leaf::Ret(default));
    }
    out
}

/// Emit a balanced search tree over `runs` (non-empty, sorted by start). The accumulator holds
/// the syscall number on entry.
fn tree(runs: &[(u32, Leaf)]) -> Vec<sock_filter> {
    if let [(_, leaf)] = runs {
        return leaf_code(leaf);
    }
    let mid = runs.len() / 2;
    let (left, right) = (tree(&runs[..mid]), tree(&runs[mid..]));
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        // nr >= first number of the right half → skip the left subtree.
        Ok(skip) => out.push(jump(BPF_JMP_JGE_K, runs[mid].0, skip, 0)),
        // Conditional jumps reach 255 instructions; a long left subtree needs a `ja` trampoline.
        Err(_) => {
            out.push(jump(BPF_JMP_JGE_K, runs[mid].0, 0, 1));
            out.push(stmt(
                BPF_JMP_JA,
                u32::try_from(left.len()).unwrap_or(u32::MAX),
            ));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

fn leaf_code(leaf: &Leaf) -> Vec<sock_filter> {
    match *leaf {
        Leaf::Ret(action) => vec![stmt(BPF_RET_K, action)],
        Leaf::ArgIn {
            arg,
            ref values,
            hit,
            miss,
        } => {
            let mut out = vec![stmt(BPF_LD_W_ABS, OFF_ARGS + 8 * arg)];
            let n = values.len();
            for (i, &v) in values.iter().enumerate() {
                // Land on the final `ret hit`, past the remaining compares and `ret miss`.
                let to_hit = u8::try_from(n - i).unwrap_or(u8::MAX);
                out.push(jump(BPF_JMP_JEQ_K, v, to_hit, 0));
            }
            out.push(stmt(BPF_RET_K, miss));
            out.push(stmt(BPF_RET_K, hit));
            out
        }
        Leaf::AnyOf {
            ref alts,
            hit,
            miss,
        } => {
            let mut out = Vec::new();
            for alt in alts {
                for (i, &(arg, value)) in alt.iter().enumerate() {
                    // A mismatch skips the rest of this alternative: its loads, compares, `ret`.
                    let rest = u8::try_from(2 * (alt.len() - i - 1) + 1).unwrap_or(u8::MAX);
                    out.push(stmt(BPF_LD_W_ABS, OFF_ARGS + 8 * arg));
                    out.push(jump(BPF_JMP_JEQ_K, value, 0, rest));
                }
                out.push(stmt(BPF_RET_K, hit));
            }
            out.push(stmt(BPF_RET_K, miss));
            out
        }
        Leaf::ArgMaskClear {
            arg,
            mask,
            clear,
            set,
        } => vec![
            stmt(BPF_LD_W_ABS, OFF_ARGS + 8 * arg),
            jump(BPF_JMP_JSET_K, mask, 1, 0),
            stmt(BPF_RET_K, clear),
            stmt(BPF_RET_K, set),
        ],
    }
}

/// A classic-BPF interpreter for the subset above, so unit tests can check every syscall number
/// against the rule table without installing anything.
#[cfg(test)]
pub(crate) fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = &prog[pc];
        let k = ins.k;
        let branch = |taken: bool| 1 + usize::from(if taken { ins.jt } else { ins.jf });
        pc += match ins.code {
            BPF_LD_W_ABS => {
                let at = k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
                1
            }
            BPF_JMP_JA => 1 + k as usize,
            BPF_JMP_JEQ_K => branch(acc == k),
            BPF_JMP_JGE_K => branch(acc >= k),
            BPF_JMP_JSET_K => branch(acc & k != 0),
            BPF_RET_K => return k,
            other => panic!("unexpected opcode {other:#x} at {pc}"),
        };
        assert!(pc < prog.len(), "jump past the end of the program");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const KILL: u32 = 0x8000_0000;

    #[test]
    fn tree_matches_the_rule_map_for_every_number() {
        // Scattered rules, including a long left subtree that needs the `ja` trampoline.
        let mut rules = BTreeMap::new();
        for nr in (0..1200).filter(|n| n % 3 == 0 || n % 7 == 1) {
            rules.insert(nr, Leaf::Ret(ALLOW));
        }
        rules.insert(
            56,
            Leaf::ArgMaskClear {
                arg: 0,
                mask: 0x1000_0000,
                clear: ALLOW,
                set: KILL,
            },
        );
        let prog = assemble(&rules, KILL, KILL);
        assert!(
            prog.iter().any(|i| i.code == BPF_JMP_JA),
            "trampoline exercised"
        );
        for nr in 0..1300u32 {
            let want = match rules.get(&nr) {
                Some(Leaf::Ret(a)) => *a,
                Some(_) => ALLOW, // args are zero: no namespace bit
                None => KILL,
            };
            assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), want, "nr {nr}");
        }
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, 56, [0x1000_0011, 0, 0, 0, 0, 0]),
            KILL
        );
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, 3 | X32_SYSCALL_BIT, [0; 6]),
            KILL
        );
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, u32::MAX, [0; 6]), KILL);
        assert_eq!(run(&prog, 0x4000_0003, 3, [0; 6]), KILL, "i386");
    }

    #[test]
    fn arg_checks_compare_the_low_word_only() {
        let mut rules = BTreeMap::new();
        let values = vec![0x5412, 0x541C];
        rules.insert(
            16,
            Leaf::ArgIn {
                arg: 1,
                values,
                hit: KILL,
                miss: ALLOW,
            },
        );
        let prog = assemble(&rules, KILL, KILL);
        let with = |req: u64| run(&prog, AUDIT_ARCH_X86_64, 16, [0, req, 0, 0, 0, 0]);
        assert_eq!(with(0x5412), KILL);
        assert_eq!(with(0x541C), KILL);
        assert_eq!(with(0x1_0000_5412), KILL, "high bits set");
        assert_eq!(with(0x541B), ALLOW);
    }

    #[test]
    fn any_of_needs_every_pair_of_one_alternative() {
        let mut rules = BTreeMap::new();
        let alts = vec![vec![(0, 1)], vec![(0, 16), (2, 0)]];
        rules.insert(
            41,
            Leaf::AnyOf {
                alts,
                hit: ALLOW,
                miss: KILL,
            },
        );
        let prog = assemble(&rules, KILL, KILL);
        let with = |a: u64, c: u64| run(&prog, AUDIT_ARCH_X86_64, 41, [a, 3, c, 0, 0, 0]);
        assert_eq!(with(1, 9), ALLOW);
        assert_eq!(with(16, 0), ALLOW);
        assert_eq!(with(16 | 1 << 32, 1 << 32), ALLOW, "low words only");
        assert_eq!(with(16, 9), KILL);
        assert_eq!(with(2, 0), KILL);
    }

    #[test]
    fn adjacent_equal_runs_merge() {
        let rules: BTreeMap<u32, Leaf> = (0..100).map(|n| (n, Leaf::Ret(ALLOW))).collect();
        // One run of allows, one of the default: one node, two leaves, plus the 6-insn prologue.
        assert_eq!(assemble(&rules, KILL, KILL).len(), 6 + 3);
    }
}
