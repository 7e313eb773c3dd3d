use std::io::{Read, Write};
use std::os::fd::AsFd;

use super::*;

fn pair() -> (OwnedFd, OwnedFd) {
    sys::seqpacket_pair().unwrap()
}

#[test]
fn every_message_round_trips_through_the_socket() {
    let (a, b) = pair();
    let ups = [
        Up::SetupFailed(SetupError::new(
            "mount tree",
            Some("mount"),
            Some("/usr".into()),
            Some(Errno::EPERM),
            "mount \"/usr\" on \"/tmp/x/usr\" (MS_BIND): EPERM".into(),
        )),
        Up::Ready {
            landlock_status: "fully_enforced".into(),
            landlock_abi: 6,
        },
        Up::ExecFailed {
            path: "/usr/bin/nope".into(),
            errno: 2,
        },
        Up::Exited(Exit {
            pid: 2,
            code: Some(3),
            signal: None,
            user_us: 1,
            sys_us: 2,
            maxrss: 4096,
        }),
    ];
    for up in &ups {
        send(a.as_fd(), up, &[]).unwrap();
        let (got, fds) = recv::<Up>(b.as_fd(), false).unwrap().unwrap();
        assert_eq!(&got, up);
        assert!(fds.is_empty());
    }
    send(b.as_fd(), &Down::Listen { port: 0 }, &[]).unwrap();
    let (down, _) = recv::<Down>(a.as_fd(), false).unwrap().unwrap();
    assert_eq!(down, Down::Listen { port: 0 });
    let spec = ExecSpec {
        argv: vec!["sh".into(), "-c".into(), "exit 3".into()],
        env: vec![("PATH".into(), "/usr/bin".into())],
        cwd: "/sandbox".into(),
        files: vec![FileSpec {
            path: "/sandbox/a".into(),
            mode: 0o644,
            len: 5,
        }],
        cpu_ms: Some(1500),
    };
    let json = serde_json::to_vec(&spec).unwrap();
    assert_eq!(serde_json::from_slice::<ExecSpec>(&json).unwrap(), spec);
}

#[test]
fn exit_without_allocation_decodes_as_up_exited() {
    let (a, b) = pair();
    let exit = Exit {
        pid: 4_194_304,
        code: None,
        signal: Some(31),
        user_us: 5,
        sys_us: 7,
        maxrss: 4096,
    };
    send_exit(a.as_fd(), &exit);
    let (got, _) = recv::<Up>(b.as_fd(), false).unwrap().unwrap();
    assert_eq!(got, Up::Exited(exit));
}

#[test]
fn a_pipe_sent_over_the_socket_is_usable_on_the_other_side() {
    let (a, b) = pair();
    let (r, w) = nix::unistd::pipe().unwrap();
    send(a.as_fd(), &Up::Listening { port: 9 }, &[w.as_fd()]).unwrap();
    drop(w);
    let (msg, mut fds) = recv::<Up>(b.as_fd(), false).unwrap().unwrap();
    assert_eq!(msg, Up::Listening { port: 9 });
    let received = fds.pop().unwrap();
    // Received descriptors are close-on-exec (MSG_CMSG_CLOEXEC).
    let flags = nix::fcntl::fcntl(&received, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
    let mut w = std::fs::File::from(received);
    w.write_all(b"through SCM_RIGHTS").unwrap();
    drop(w);
    let mut text = String::new();
    std::fs::File::from(r).read_to_string(&mut text).unwrap();
    assert_eq!(text, "through SCM_RIGHTS");
}

#[test]
fn four_descriptors_travel_with_an_exec() {
    let (a, b) = pair();
    let pipes: Vec<_> = (0..2).map(|_| nix::unistd::pipe().unwrap()).collect();
    let fds = [
        pipes[0].0.as_fd(),
        pipes[0].1.as_fd(),
        pipes[1].0.as_fd(),
        pipes[1].1.as_fd(),
    ];
    send(b.as_fd(), &Down::Exec { spec_len: 10 }, &fds).unwrap();
    let (msg, got) = recv::<Down>(a.as_fd(), false).unwrap().unwrap();
    assert_eq!(msg, Down::Exec { spec_len: 10 });
    assert_eq!(got.len(), 4);
    // A message of the wrong kind for its descriptors is refused before it leaves.
    assert!(matches!(
        send(b.as_fd(), &Down::Exec { spec_len: 1 }, &fds[..1]),
        Err(ProtocolError::Fds {
            expected: 4,
            got: 1
        })
    ));
}

#[test]
fn malformed_oversized_and_mismatched_messages_are_rejected() {
    let (a, b) = pair();
    sys::send_fds(a.as_fd(), b"{\"Exited\":", &[]).unwrap();
    assert!(matches!(
        recv::<Up>(b.as_fd(), false),
        Err(ProtocolError::Malformed(_))
    ));
    sys::send_fds(a.as_fd(), b"{\"Launch\":{}}", &[]).unwrap();
    assert!(matches!(
        recv::<Up>(b.as_fd(), false),
        Err(ProtocolError::Malformed(_))
    ));
    let big = vec![b' '; MAX_MESSAGE + 100];
    sys::send_fds(a.as_fd(), &big, &[]).unwrap();
    assert!(matches!(
        recv::<Up>(b.as_fd(), false),
        Err(ProtocolError::TooLarge { .. })
    ));
    // The next message after a rejected one still arrives whole.
    send(a.as_fd(), &Down::Listen { port: 1 }, &[]).unwrap();
    assert_eq!(
        recv::<Down>(b.as_fd(), false).unwrap().unwrap().0,
        Down::Listen { port: 1 }
    );
    // A descriptor on a message that carries none is refused (and closed by the drop).
    let (r, _w) = nix::unistd::pipe().unwrap();
    let bytes = encode(&Up::Ready {
        landlock_status: "x".into(),
        landlock_abi: 1,
    })
    .unwrap();
    sys::send_fds(a.as_fd(), &bytes, &[r.as_fd()]).unwrap();
    assert!(matches!(
        recv::<Up>(b.as_fd(), false),
        Err(ProtocolError::Fds {
            expected: 0,
            got: 1
        })
    ));
    // Encoding refuses what the receiver would refuse.
    let huge = Up::ExecFailed {
        path: "x".repeat(MAX_MESSAGE),
        errno: 2,
    };
    assert!(matches!(encode(&huge), Err(ProtocolError::TooLarge { .. })));
    assert!(matches!(
        recv::<Up>(b.as_fd(), true),
        Err(ProtocolError::Io {
            errno: Errno::EAGAIN,
            ..
        })
    ));
    drop(a);
    assert!(recv::<Up>(b.as_fd(), false).unwrap().is_none());
}

#[test]
fn setup_errors_always_fit_one_datagram() {
    let e = SetupError::new(
        "mount tree",
        Some("mount"),
        Some("é".repeat(MAX_MESSAGE)),
        Some(Errno::ENOENT),
        "x".repeat(MAX_MESSAGE * 2),
    );
    assert!(e.message.len() <= MAX_TEXT && e.path.as_ref().unwrap().len() <= MAX_TEXT);
    let (a, b) = pair();
    send(a.as_fd(), &Up::SetupFailed(e.clone()), &[]).unwrap();
    let (got, _) = recv::<Up>(b.as_fd(), false).unwrap().unwrap();
    assert_eq!(got, Up::SetupFailed(e));
}
