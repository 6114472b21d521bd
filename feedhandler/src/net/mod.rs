//! Sockets: the kernel-facing half. UDP lines (multicast, or unicast where multicast does not
//! work), send paths (`send`, `sendmmsg`, io_uring), receive paths (`recv`, `recvmmsg`, io_uring multishot), the
//! publisher's retransmission server (unicast UDP) and snapshot server (TCP), and the loops that
//! drive the sans-IO cores. This is the only module with `unsafe`: the `sendmmsg` / `recvmmsg` /
//! `poll` calls and io_uring submissions (the receive side in [`uring_rx`]), each with its
//! SAFETY line.
//!
//! Every path is probed at run time and falls back with a line saying why
//! ([`SendPath::open`], [`RecvPath::open`]).

#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

mod uring_rx;
#[cfg(feature = "af-xdp")]
pub mod xdp;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
pub use uring_rx::{URING_BUFS, UringBuffers, UringRx, probe as probe_uring_recv};

use socket2::{Domain, Protocol, Socket, Type};

use crate::loss::{LossConfig, LossInjector};
use crate::proto::{self, Message};
use crate::publisher::{Publisher, Retransmit};
use crate::subscriber::{Action, Line, Subscriber};

/// Wall-clock nanoseconds since the Unix epoch: the one-way latency stamp (publisher and
/// subscriber share a host in every test; across hosts it needs synchronised clocks).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// CPU time this thread has used, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): what a receive
/// path costs, including the io_uring task work the kernel runs in the submitting thread.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, exclusively borrowed timespec; the clock id is a constant.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Largest datagram a receive buffer holds.
pub const DATAGRAM_MAX: usize = 2048;
/// Datagrams per `sendmmsg` / `recvmmsg` call and per io_uring batch.
pub const BATCH_MAX: usize = 32;

/// Where a line's packets go: a multicast group (joined on `iface`) or a unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAddr {
    pub addr: SocketAddrV4,
    /// Interface for multicast (127.0.0.1 for loopback tests).
    pub iface: Ipv4Addr,
}

impl LineAddr {
    pub fn is_multicast(&self) -> bool {
        self.addr.ip().is_multicast()
    }
}

/// A socket that sends one line's packets (connected to the line's address).
pub fn sender_socket(line: LineAddr, ttl: u32) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if line.is_multicast() {
        socket.set_multicast_if_v4(&line.iface)?;
        socket.set_multicast_ttl_v4(ttl)?;
        socket.set_multicast_loop_v4(true)?;
    }
    socket.set_send_buffer_size(4 << 20)?;
    socket.connect(&SocketAddr::V4(line.addr).into())?;
    Ok(socket.into())
}

/// A non-blocking socket that receives one line (bound to its port, group joined).
pub fn receiver_socket(line: LineAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_recv_buffer_size(8 << 20)?;
    if line.is_multicast() {
        socket.bind(&SocketAddr::V4(line.addr).into())?;
        socket.join_multicast_v4(line.addr.ip(), &line.iface)?;
    } else {
        socket.bind(&SocketAddr::V4(line.addr).into())?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Does multicast on `iface` reach a member on this host? Tests call it first and fall back to
/// unicast on loopback where a sandbox has no multicast route.
pub fn multicast_loopback_works(group: Ipv4Addr, port: u16, iface: Ipv4Addr) -> bool {
    let line = LineAddr {
        addr: SocketAddrV4::new(group, port),
        iface,
    };
    let (Ok(rx), Ok(tx)) = (receiver_socket(line), sender_socket(line, 0)) else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 16];
    while Instant::now() < deadline {
        let _ = tx.send(b"probe");
        std::thread::sleep(Duration::from_millis(5));
        if let Ok(n) = rx.recv(&mut buf) {
            return &buf[..n] == b"probe";
        }
    }
    false
}

/// How packets leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// One `send(2)` per packet.
    Send,
    /// `sendmmsg(2)`: up to [`BATCH_MAX`] packets per system call.
    SendMmsg,
    /// io_uring `IORING_OP_SEND`, one submission per batch.
    IoUring,
}

impl std::str::FromStr for SendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "send" | "sendto" => Ok(SendKind::Send),
            "sendmmsg" => Ok(SendKind::SendMmsg),
            "io-uring" | "io_uring" | "uring" => Ok(SendKind::IoUring),
            _ => Err(format!(
                "unknown send path {s:?} (send, sendmmsg, io-uring)"
            )),
        }
    }
}

/// A send path, probed.
pub struct SendPath {
    kind: SendKind,
    ring: Option<io_uring::IoUring>,
}

impl std::fmt::Debug for SendPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendPath")
            .field("kind", &self.kind)
            .finish()
    }
}

impl SendPath {
    /// Opens the wanted path, or the best one below it; the string says which and why.
    pub fn open(wanted: SendKind) -> (SendPath, String) {
        if wanted == SendKind::IoUring {
            match io_uring::IoUring::new(64) {
                Ok(ring) => {
                    return (
                        SendPath {
                            kind: SendKind::IoUring,
                            ring: Some(ring),
                        },
                        "send path: io_uring (IORING_OP_SEND)".to_string(),
                    );
                }
                Err(e) => {
                    return (
                        SendPath {
                            kind: SendKind::SendMmsg,
                            ring: None,
                        },
                        format!("send path: sendmmsg (io_uring unavailable: {e})"),
                    );
                }
            }
        }
        let line = match wanted {
            SendKind::Send => "send path: send",
            _ => "send path: sendmmsg",
        };
        (
            SendPath {
                kind: wanted,
                ring: None,
            },
            line.to_string(),
        )
    }

    pub fn kind(&self) -> SendKind {
        self.kind
    }

    /// Sends every packet on the connected `socket`; returns how many went (a full socket
    /// buffer drops the rest, as a switch would: the subscriber recovers them).
    pub fn send(&mut self, socket: &UdpSocket, packets: &[Vec<u8>]) -> io::Result<usize> {
        let mut sent = 0;
        for chunk in packets.chunks(BATCH_MAX) {
            sent += match self.kind {
                SendKind::Send => {
                    let mut n = 0;
                    for p in chunk {
                        match socket.send(p) {
                            Ok(_) => n += 1,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                    n
                }
                SendKind::SendMmsg => sendmmsg(socket, chunk)?,
                SendKind::IoUring => {
                    let ring = self.ring.as_mut().expect("io_uring path holds a ring");
                    uring_send(ring, socket, chunk)?
                }
            };
        }
        Ok(sent)
    }
}

fn sendmmsg(socket: &UdpSocket, packets: &[Vec<u8>]) -> io::Result<usize> {
    assert!(packets.len() <= BATCH_MAX);
    let mut iovs: [libc::iovec; BATCH_MAX] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH_MAX];
    // SAFETY: mmsghdr is plain data; all-zero is a valid "no name, no control" header.
    let mut msgs: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
    for (i, p) in packets.iter().enumerate() {
        iovs[i].iov_base = p.as_ptr() as *mut libc::c_void;
        iovs[i].iov_len = p.len();
    }
    for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()).take(packets.len()) {
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0;
    while done < packets.len() {
        // SAFETY: `msgs[done..len]` point at `iovs`, which point into `packets`; all outlive the
        // call, and the kernel only reads them (the socket is connected, so no name is needed).
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr().add(done),
                (packets.len() - done) as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) {
                break;
            }
            return Err(e);
        }
        done += n as usize;
        if n == 0 {
            break;
        }
    }
    Ok(done)
}

fn uring_send(
    ring: &mut io_uring::IoUring,
    socket: &UdpSocket,
    packets: &[Vec<u8>],
) -> io::Result<usize> {
    use io_uring::{opcode, types};
    let fd = types::Fd(socket.as_raw_fd());
    for (i, p) in packets.iter().enumerate() {
        let len = u32::try_from(p.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(fd, p.as_ptr(), len)
            .build()
            .user_data(i as u64);
        // SAFETY: the entry points into `packets[i]`, which lives until every completion below
        // has been reaped (we wait for all of them before returning).
        unsafe { ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    }
    ring.submit_and_wait(packets.len())?;
    let mut sent = 0;
    let mut reaped = 0;
    while reaped < packets.len() {
        for cqe in ring.completion() {
            reaped += 1;
            let r = cqe.result();
            if r >= 0 {
                sent += 1;
            } else if r != -libc::EAGAIN && r != -libc::ENOBUFS {
                return Err(io::Error::from_raw_os_error(-r));
            }
        }
        if reaped < packets.len() {
            ring.submit_and_wait(packets.len() - reaped)?;
        }
    }
    Ok(sent)
}

/// How packets arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvKind {
    /// One `recv(2)` per datagram.
    Recv,
    /// `recvmmsg(2)`: up to [`BATCH_MAX`] datagrams per system call.
    RecvMmsg,
    /// io_uring multishot `IORING_OP_RECV` into provided buffers, probed at run time.
    IoUring,
    /// AF_XDP on the line's interface (cargo feature `af-xdp`); the line sockets stay open and
    /// are read too, for anything the XDP program passes to the stack.
    AfXdp,
}

impl std::str::FromStr for RecvKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "recv" => Ok(RecvKind::Recv),
            "recvmmsg" => Ok(RecvKind::RecvMmsg),
            "io-uring" | "io_uring" | "uring" => Ok(RecvKind::IoUring),
            "af-xdp" | "af_xdp" | "xdp" => Ok(RecvKind::AfXdp),
            _ => Err(format!(
                "unknown receive path {s:?} (recv, recvmmsg, io-uring, af-xdp)"
            )),
        }
    }
}

/// How a receive path is opened: the probe is injectable so tests can prove the fallback.
#[derive(Debug, Clone, Copy)]
pub struct RecvOptions {
    /// io_uring buffer provision: None tries the registered buffer ring, then classic.
    pub uring_buffers: Option<UringBuffers>,
    /// Replaces the io_uring probe (tests inject a failure with it).
    pub uring_probe: fn(Option<UringBuffers>) -> Result<UringBuffers, String>,
}

impl Default for RecvOptions {
    fn default() -> Self {
        RecvOptions {
            uring_buffers: None,
            uring_probe: uring_rx::probe,
        }
    }
}

/// Sockets one receive path serves at most (lines A and B and the retransmission socket).
pub const RECV_SOCKETS_MAX: usize = 4;

/// A receive path with its buffers (allocated once; on the io_uring path one ring for all the
/// sockets, set up on first use in the thread that polls).
#[derive(Debug)]
pub struct RecvPath {
    kind: RecvKind,
    bufs: Vec<[u8; DATAGRAM_MAX]>,
    lens: Vec<usize>,
    uring_buffers: UringBuffers,
    /// io_uring path: the ring of every socket this path has waited on.
    ring: Option<UringRx>,
    /// AF_XDP path: each line socket's XDP socket, keyed by the line socket's descriptor.
    #[cfg(feature = "af-xdp")]
    xsks: Vec<(RawFd, xdp::XdpRx)>,
}

impl RecvPath {
    /// Opens the wanted path, or recvmmsg when it cannot work here; the string says which
    /// path is in use and why.
    pub fn open(kind: RecvKind) -> (RecvPath, String) {
        RecvPath::open_with(kind, RecvOptions::default())
    }

    pub fn open_with(kind: RecvKind, options: RecvOptions) -> (RecvPath, String) {
        let mut path = RecvPath {
            kind,
            bufs: vec![[0u8; DATAGRAM_MAX]; BATCH_MAX],
            lens: vec![0; BATCH_MAX],
            uring_buffers: UringBuffers::Ring,
            ring: None,
            #[cfg(feature = "af-xdp")]
            xsks: Vec::with_capacity(RECV_SOCKETS_MAX),
        };
        let line = match kind {
            RecvKind::Recv => "receive path: recv".to_string(),
            RecvKind::RecvMmsg => "receive path: recvmmsg".to_string(),
            RecvKind::IoUring => match (options.uring_probe)(options.uring_buffers) {
                Ok(buffers) => {
                    path.uring_buffers = buffers;
                    format!(
                        "receive path: io_uring (one ring, multishot IORING_OP_RECV per socket, {} shared buffers of {DATAGRAM_MAX} bytes, {})",
                        uring_rx::URING_BUFS,
                        match buffers {
                            UringBuffers::Ring => "registered buffer ring",
                            UringBuffers::Classic => "IORING_OP_PROVIDE_BUFFERS",
                        }
                    )
                }
                Err(why) => {
                    path.kind = RecvKind::RecvMmsg;
                    format!("receive path: recvmmsg (io_uring receive unavailable: {why})")
                }
            },
            RecvKind::AfXdp if cfg!(feature = "af-xdp") => {
                // Decided per line in `attach_xdp`, which sees the line's address.
                "receive path: AF_XDP (pending: attached per line)".to_string()
            }
            RecvKind::AfXdp => {
                path.kind = RecvKind::RecvMmsg;
                "receive path: recvmmsg (AF_XDP not built: rebuild with cargo feature af-xdp)"
                    .to_string()
            }
        };
        (path, line)
    }

    /// AF_XDP path: opens an XDP socket for the line `socket` receives; on failure the whole
    /// path falls back to recvmmsg. Returns the log line: which path and why.
    pub fn attach_xdp(&mut self, socket: &UdpSocket, line: LineAddr) -> String {
        if self.kind != RecvKind::AfXdp {
            return String::new();
        }
        #[cfg(feature = "af-xdp")]
        {
            match xdp::XdpRx::open(line.addr, line.iface) {
                Ok(rx) => {
                    self.xsks.push((socket.as_raw_fd(), rx));
                    format!(
                        "receive path: AF_XDP for {} (copy mode, generic XDP, queue 0, {} frames of {} bytes)",
                        line.addr,
                        xdp::XDP_FRAMES,
                        xdp::XDP_FRAME_BYTES
                    )
                }
                Err(e) => {
                    self.kind = RecvKind::RecvMmsg;
                    self.xsks.clear();
                    format!(
                        "receive path: recvmmsg (AF_XDP unavailable for {}: {e})",
                        line.addr
                    )
                }
            }
        }
        #[cfg(not(feature = "af-xdp"))]
        {
            let _ = (socket, line);
            unreachable!("open() falls back when the feature is off")
        }
    }

    /// Datagrams the AF_XDP sockets delivered (0 on other paths).
    pub fn xdp_packets(&self) -> u64 {
        #[cfg(feature = "af-xdp")]
        {
            self.xsks.iter().map(|(_, x)| x.packets).sum()
        }
        #[cfg(not(feature = "af-xdp"))]
        {
            0
        }
    }

    pub fn kind(&self) -> RecvKind {
        self.kind
    }

    /// Times the kernel ended a multishot receive and it was armed again (io_uring path).
    pub fn rearms(&self) -> u64 {
        self.ring.as_ref().map_or(0, |r| r.rearms)
    }

    /// The io_uring path's ring with `sockets` added (set up on first use).
    fn ring(&mut self, sockets: &[&UdpSocket]) -> io::Result<&mut UringRx> {
        let ring = match &mut self.ring {
            Some(ring) => ring,
            none => none.insert(UringRx::new(Some(self.uring_buffers))?),
        };
        for socket in sockets {
            ring.add(socket);
        }
        Ok(ring)
    }

    /// Waits up to `timeout` until one of `sockets` has datagrams: on the io_uring path one
    /// `io_uring_enter` on their shared ring; on the others one `poll(2)` on the sockets (and
    /// on the AF_XDP path their XDP sockets).
    pub fn wait(&mut self, sockets: &[&UdpSocket], timeout: Duration) -> io::Result<()> {
        if self.kind == RecvKind::IoUring {
            return self.ring(sockets)?.wait(timeout);
        }
        let mut fds = [0; WAIT_FDS_MAX];
        let mut count = 0;
        for socket in sockets {
            fds[count] = self.wait_fd(socket);
            count += 1;
            if let Some(fd) = self.also_wait_fd(socket) {
                fds[count] = fd;
                count += 1;
            }
        }
        wait_readable(&fds[..count], timeout)
    }

    /// Reads what is waiting on every one of `sockets` (non-blocking) and calls
    /// `each(index in sockets, datagram)` for each datagram; returns how many.
    pub fn recv_all(
        &mut self,
        sockets: &[&UdpSocket],
        mut each: impl FnMut(usize, &[u8]),
    ) -> io::Result<usize> {
        if self.kind == RecvKind::IoUring {
            assert!(sockets.len() <= RECV_SOCKETS_MAX);
            let ring = self.ring(sockets)?;
            // The ring numbers sockets in the order they were first added.
            let mut to_caller = [usize::MAX; RECV_SOCKETS_MAX];
            for (i, socket) in sockets.iter().enumerate() {
                if let Some(r) = ring.index_of(socket.as_raw_fd()) {
                    to_caller[r] = i;
                }
            }
            return ring.recv(|r, datagram| {
                if let Some(&i) = to_caller.get(r).filter(|&&i| i != usize::MAX) {
                    each(i, datagram);
                }
            });
        }
        let mut n = 0;
        for (i, socket) in sockets.iter().enumerate() {
            n += self.recv(socket, |datagram| each(i, datagram))?;
        }
        Ok(n)
    }

    /// The descriptor to wait on for `socket`'s datagrams on the `recv`, `recvmmsg` and AF_XDP
    /// paths: the socket itself, or its XDP socket.
    fn wait_fd(&self, socket: &UdpSocket) -> RawFd {
        match self.kind {
            #[cfg(feature = "af-xdp")]
            RecvKind::AfXdp => self
                .xsks
                .iter()
                .find(|(f, _)| *f == socket.as_raw_fd())
                .map_or(socket.as_raw_fd(), |(_, x)| x.wait_fd()),
            _ => socket.as_raw_fd(),
        }
    }

    /// A second descriptor to wait on for `socket`: on the AF_XDP path the line socket
    /// itself, which gets what the program passes to the stack.
    fn also_wait_fd(&self, socket: &UdpSocket) -> Option<RawFd> {
        (self.kind == RecvKind::AfXdp).then(|| socket.as_raw_fd())
    }

    /// Reads what is waiting on the non-blocking `socket` (at most [`BATCH_MAX`] datagrams)
    /// and calls `each` with every datagram; returns how many. On the io_uring path, whose
    /// ring serves several sockets at once, use [`RecvPath::recv_all`]; here it reads `socket`
    /// with recvmmsg.
    pub fn recv(&mut self, socket: &UdpSocket, mut each: impl FnMut(&[u8])) -> io::Result<usize> {
        let n = match self.kind {
            RecvKind::Recv => {
                let mut n = 0;
                while n < BATCH_MAX {
                    match socket.recv(&mut self.bufs[n]) {
                        Ok(len) => {
                            self.lens[n] = len;
                            n += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                n
            }
            RecvKind::RecvMmsg | RecvKind::IoUring => {
                recvmmsg(socket, &mut self.bufs, &mut self.lens)?
            }
            RecvKind::AfXdp => {
                #[cfg(feature = "af-xdp")]
                let from_xdp = match self.xsks.iter_mut().find(|(f, _)| *f == socket.as_raw_fd()) {
                    Some((_, x)) => x.recv(&mut each),
                    None => 0,
                };
                #[cfg(not(feature = "af-xdp"))]
                let from_xdp = 0;
                let n = recvmmsg(socket, &mut self.bufs, &mut self.lens)?;
                for i in 0..n {
                    each(&self.bufs[i][..self.lens[i]]);
                }
                return Ok(from_xdp + n);
            }
        };
        for i in 0..n {
            each(&self.bufs[i][..self.lens[i]]);
        }
        Ok(n)
    }
}

fn recvmmsg(
    socket: &UdpSocket,
    bufs: &mut [[u8; DATAGRAM_MAX]],
    lens: &mut [usize],
) -> io::Result<usize> {
    let count = bufs.len().min(BATCH_MAX);
    let mut iovs: [libc::iovec; BATCH_MAX] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH_MAX];
    // SAFETY: mmsghdr is plain data; all-zero is a valid header with no name and no control.
    let mut msgs: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
    for (iov, buf) in iovs.iter_mut().zip(bufs.iter_mut()).take(count) {
        iov.iov_base = buf.as_mut_ptr() as *mut libc::c_void;
        iov.iov_len = DATAGRAM_MAX;
    }
    for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()).take(count) {
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: each header points at one iovec, each iovec at a distinct DATAGRAM_MAX buffer in
    // `bufs`, all alive and exclusively borrowed for the call; MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(0);
        }
        return Err(e);
    }
    let n = n as usize;
    for i in 0..n {
        lens[i] = msgs[i].msg_len as usize;
    }
    Ok(n)
}

/// Most descriptors [`wait_readable`] waits on.
pub const WAIT_FDS_MAX: usize = 8;

/// Waits until one of `fds` is readable or `timeout` passes (no allocation: it runs in the
/// receive loop).
pub fn wait_readable(fds: &[i32], timeout: Duration) -> io::Result<()> {
    assert!(
        fds.len() <= WAIT_FDS_MAX,
        "at most {WAIT_FDS_MAX} descriptors"
    );
    let mut all = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; WAIT_FDS_MAX];
    for (p, fd) in all.iter_mut().zip(fds) {
        p.fd = *fd;
    }
    let pollfds = &mut all[..fds.len()];
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pollfds` is a live, exclusively borrowed array of `pollfds.len()` entries.
    let r = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Where a publisher sends and serves.
#[derive(Debug, Clone)]
pub struct PublisherNetConfig {
    pub line_a: LineAddr,
    pub line_b: Option<LineAddr>,
    pub ttl: u32,
    pub send: SendKind,
    /// Retransmission server (unicast UDP).
    pub retransmit_addr: SocketAddrV4,
    /// Snapshot server (TCP).
    pub snapshot_addr: SocketAddrV4,
    pub loss_a: LossConfig,
    pub loss_b: LossConfig,
}

/// The publisher with its sockets: lines A and B, the retransmission and snapshot servers.
#[derive(Debug)]
pub struct NetPublisher {
    pub core: Publisher,
    path: SendPath,
    a: UdpSocket,
    b: Option<UdpSocket>,
    loss_a: LossInjector,
    loss_b: LossInjector,
    rtx: UdpSocket,
    snapshots: TcpListener,
    out_a: Vec<Vec<u8>>,
    out_b: Vec<Vec<u8>>,
    /// Packets put on the wire per line (after loss injection).
    pub sent_a: u64,
    pub sent_b: u64,
    /// B stays silent while this is set (outage tests).
    pub b_down: bool,
    pub retransmissions_served: u64,
    pub snapshots_served: u64,
}

impl NetPublisher {
    /// Opens the sockets; the string is the send path's log line.
    pub fn open(
        core: Publisher,
        config: &PublisherNetConfig,
    ) -> io::Result<(NetPublisher, String)> {
        let (path, line) = SendPath::open(config.send);
        let a = sender_socket(config.line_a, config.ttl)?;
        let b = config
            .line_b
            .map(|l| sender_socket(l, config.ttl))
            .transpose()?;
        fn named(what: &'static str, addr: SocketAddrV4) -> impl Fn(io::Error) -> io::Error {
            move |e| io::Error::new(e.kind(), format!("{what} {addr}: {e}"))
        }
        let rtx = UdpSocket::bind(config.retransmit_addr)
            .map_err(named("retransmission server", config.retransmit_addr))?;
        rtx.set_nonblocking(true)?;
        let snapshots = TcpListener::bind(config.snapshot_addr)
            .map_err(named("snapshot server", config.snapshot_addr))?;
        snapshots.set_nonblocking(true)?;
        Ok((
            NetPublisher {
                core,
                path,
                a,
                b,
                loss_a: LossInjector::new(config.loss_a),
                loss_b: LossInjector::new(config.loss_b),
                rtx,
                snapshots,
                out_a: Vec::new(),
                out_b: Vec::new(),
                sent_a: 0,
                sent_b: 0,
                b_down: false,
                retransmissions_served: 0,
                snapshots_served: 0,
            },
            line,
        ))
    }

    pub fn retransmit_addr(&self) -> io::Result<SocketAddr> {
        self.rtx.local_addr()
    }

    pub fn snapshot_addr(&self) -> io::Result<SocketAddr> {
        self.snapshots.local_addr()
    }

    /// Hands `messages` to the core, closes the packet, sends it ([`NetPublisher::pump`]) and
    /// answers waiting requests ([`NetPublisher::serve`]): one step of a publishing loop.
    pub fn publish(&mut self, messages: &[Message]) -> io::Result<()> {
        for m in messages {
            self.core.handle_message(m);
        }
        self.core.flush();
        self.pump()?;
        self.serve()
    }

    /// Sends every packet the core has ready on A and B, through the loss injectors.
    pub fn pump(&mut self) -> io::Result<()> {
        self.out_a.clear();
        self.out_b.clear();
        let now = now_ns();
        while let Some(packet) = self.core.poll_packet(now) {
            self.loss_a.handle_packet(packet, &mut self.out_a);
            if self.b.is_some() && !self.b_down {
                self.loss_b.handle_packet(packet, &mut self.out_b);
            }
        }
        self.sent_a += self.path.send(&self.a, &self.out_a)? as u64;
        if let Some(b) = &self.b {
            self.sent_b += self.path.send(b, &self.out_b)? as u64;
        }
        Ok(())
    }

    /// Releases packets the loss injectors hold back (end of a run).
    pub fn flush_loss(&mut self) -> io::Result<()> {
        self.out_a.clear();
        self.out_b.clear();
        self.loss_a.flush(&mut self.out_a);
        self.loss_b.flush(&mut self.out_b);
        self.path.send(&self.a, &self.out_a)?;
        if let Some(b) = &self.b {
            self.path.send(b, &self.out_b)?;
        }
        Ok(())
    }

    /// Answers waiting retransmission requests (unicast) and snapshot connections.
    pub fn serve(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = match self.rtx.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            // A request is a bare header: `seq` and `count` name the range (MoldUDP64's shape).
            let Ok(request) =
                <proto::PacketHeader as zerocopy::FromBytes>::read_from_bytes(&buf[..n])
            else {
                continue;
            };
            let count = u64::from(request.count.get());
            let mut packets = Vec::new();
            let now = now_ns();
            match self
                .core
                .handle_retransmit_request(request.seq.get(), count, now, &mut packets)
            {
                Retransmit::Packets(_) => {
                    for p in &packets {
                        let _ = self.rtx.send_to(p, from);
                    }
                    self.retransmissions_served += 1;
                }
                Retransmit::Unavailable { oldest_seq } => {
                    let mut reply = Vec::new();
                    proto::encode_header(
                        &mut reply,
                        self.core.config().session,
                        oldest_seq,
                        0,
                        now,
                    );
                    proto::set_flags(&mut reply, proto::FLAG_RETRANSMIT_UNAVAILABLE);
                    let _ = self.rtx.send_to(&reply, from);
                }
            }
        }
        loop {
            let mut stream = match self.snapshots.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            let mut bytes = Vec::new();
            self.core.snapshot(&mut bytes);
            stream.set_nonblocking(false)?;
            stream.set_write_timeout(Some(Duration::from_secs(2)))?;
            let _ = stream.write_all(&bytes);
            self.snapshots_served += 1;
            // The snapshot sealed the packet being built: send it.
            self.pump()?;
        }
        Ok(())
    }
}

/// Where a subscriber listens and asks.
#[derive(Debug, Clone)]
pub struct SubscriberNetConfig {
    pub line_a: LineAddr,
    pub line_b: Option<LineAddr>,
    pub recv: RecvKind,
    pub retransmit_addr: SocketAddr,
    pub snapshot_addr: SocketAddr,
}

/// The subscriber with its sockets.
#[derive(Debug)]
pub struct NetSubscriber {
    pub core: Subscriber,
    path: RecvPath,
    a: UdpSocket,
    b: Option<UdpSocket>,
    rtx: UdpSocket,
    retransmit_addr: SocketAddr,
    snapshot_addr: SocketAddr,
}

impl NetSubscriber {
    /// The receive path in use (after any fallback).
    pub fn recv_path(&self) -> &RecvPath {
        &self.path
    }

    /// Opens the sockets; the string is the receive path's log line.
    pub fn open(
        core: Subscriber,
        config: &SubscriberNetConfig,
    ) -> io::Result<(NetSubscriber, String)> {
        NetSubscriber::open_with(core, config, RecvOptions::default())
    }

    /// [`NetSubscriber::open`] with the receive path's options (tests inject probe failures).
    pub fn open_with(
        core: Subscriber,
        config: &SubscriberNetConfig,
        options: RecvOptions,
    ) -> io::Result<(NetSubscriber, String)> {
        let (mut path, mut line) = RecvPath::open_with(config.recv, options);
        let a = receiver_socket(config.line_a)?;
        let b = config.line_b.map(receiver_socket).transpose()?;
        if path.kind() == RecvKind::AfXdp {
            line = path.attach_xdp(&a, config.line_a);
            if let (Some(b), Some(line_b)) = (&b, config.line_b) {
                let b_line = path.attach_xdp(b, line_b);
                line = if path.kind() == RecvKind::AfXdp {
                    format!("{line}; {b_line}")
                } else {
                    b_line
                };
            }
        }
        // Requests leave from, and answers come back to, the loopback address when the
        // retransmission server is on this machine, else the line A interface's address (the
        // market-data network's side): never every interface.
        let rtx_ip = if config.retransmit_addr.ip().is_loopback() {
            Ipv4Addr::LOCALHOST
        } else {
            config.line_a.iface
        };
        let rtx = UdpSocket::bind(SocketAddrV4::new(rtx_ip, 0))?;
        rtx.set_nonblocking(true)?;
        Ok((
            NetSubscriber {
                core,
                path,
                a,
                b,
                rtx,
                retransmit_addr: config.retransmit_addr,
                snapshot_addr: config.snapshot_addr,
            },
            line,
        ))
    }

    /// Waits up to `timeout` for packets, handles what came, runs timers and requests.
    pub fn poll_once(&mut self, timeout: Duration) -> io::Result<usize> {
        // Line A, then B, then retransmissions: the order the datagrams are handled in.
        let (sockets, lines) = match &self.b {
            Some(b) => (
                [&self.a, b, &self.rtx],
                [Line::A, Line::B, Line::Retransmit],
            ),
            None => (
                [&self.a, &self.rtx, &self.rtx],
                [Line::A, Line::Retransmit, Line::Retransmit],
            ),
        };
        let sockets = &sockets[..if self.b.is_some() { 3 } else { 2 }];
        self.path.wait(sockets, timeout)?;
        let core = &mut self.core;
        let handled = self.path.recv_all(sockets, |i, p| {
            let _ = core.handle_packet(now_ns(), lines[i], p);
        })?;
        self.core.handle_timeout(now_ns());
        self.act()?;
        Ok(handled)
    }

    fn act(&mut self) -> io::Result<()> {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Retransmit { from_seq, count } => {
                    // Capped to what one request can name; the rest is asked for next round.
                    let count = u16::try_from(count).unwrap_or(proto::PACKET_MESSAGES_MAX);
                    let mut request = Vec::new();
                    proto::encode_header(
                        &mut request,
                        proto::session_name(""),
                        from_seq,
                        count,
                        now_ns(),
                    );
                    let _ = self.rtx.send_to(&request, self.retransmit_addr);
                }
                Action::Snapshot => {
                    // On failure the core asks again after its snapshot timeout.
                    if let Ok(messages) = fetch_snapshot(self.snapshot_addr) {
                        let _ = self.core.handle_snapshot(now_ns(), &messages);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Connects to a snapshot server and reads the whole snapshot.
pub fn fetch_snapshot(addr: SocketAddr) -> io::Result<Vec<Message>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    proto::decode_stream(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
