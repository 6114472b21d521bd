//! io_uring receive: one ring for every socket of a receive path (lines A and B, the
//! retransmission socket), a multishot `IORING_OP_RECV` armed on each, and one pool of
//! [`URING_BUFS`] datagram buffers the kernel picks from. The pool is handed to the kernel as a
//! registered provided-buffer ring (`IORING_REGISTER_PBUF_RING`, 5.19+) where it can, else with
//! classic `IORING_OP_PROVIDE_BUFFERS` (5.7+). Multishot receive itself needs 6.0; [`probe`]
//! tries the whole path on a throwaway socket before a subscriber relies on it.
//!
//! One ring is the point of io_uring here: the subscriber waits for all its sockets with one
//! `io_uring_enter` (completions wanted: 1, with a timeout) and reaps every socket's datagrams
//! from shared memory, where the `recv`/`recvmmsg` paths need a `poll(2)` and then one system
//! call per socket. Each completion's `user_data` names the socket it came from.
//!
//! The kernel ends a multishot receive (a completion without `IORING_CQE_F_MORE`) when the pool
//! runs dry (`-ENOBUFS`: the datagrams stay in the socket buffer) or the completion queue
//! overflows; [`UringRx::recv`] re-arms it in the same call, after recycling buffers.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, types};

use super::DATAGRAM_MAX;

/// Buffers of the ring, shared by its sockets: also the entries of the provided-buffer ring (a
/// power of two; 512 entries of 16 bytes fill two 4 KiB pages).
pub const URING_BUFS: usize = 512;
/// Sockets one ring serves at most.
pub const URING_SOCKETS_MAX: usize = super::RECV_SOCKETS_MAX;
/// Completion-queue entries per ring: room for every buffer's completion plus the arming and
/// provide completions, so the queue cannot overflow while all buffers are in flight.
const CQ_ENTRIES: u32 = 2 * URING_BUFS as u32;
const SQ_ENTRIES: u32 = 16;
/// The one buffer group each ring uses.
const BGID: u16 = 7;
/// `user_data` of socket `i`'s receive completions is `USER_DATA_RECV + i`.
const USER_DATA_RECV: u64 = 16;
const USER_DATA_PROVIDE: u64 = 2;

const _: () = assert!(URING_BUFS.is_power_of_two());
const _: () = assert!(URING_BUFS <= u16::MAX as usize);
const _: () = assert!(CQ_ENTRIES as usize >= URING_BUFS + SQ_ENTRIES as usize);

/// How the buffers reach the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UringBuffers {
    /// A registered provided-buffer ring: recycling a buffer is a store and a tail bump.
    Ring,
    /// `IORING_OP_PROVIDE_BUFFERS`: recycling a buffer is a submission.
    Classic,
}

/// The page-aligned memory of a provided-buffer ring (mmap'd, unmapped on drop).
struct BufRing {
    base: *mut types::BufRingEntry,
    /// Entries published to the kernel; the kernel's head trails it. Wraps at 2^16 as the
    /// kernel's does.
    tail: u16,
}

// SAFETY: the mapping is owned by this value alone (the kernel shares it, not another thread of
// ours); moving it to another thread moves the only user-space writer with it. A subscriber may
// be opened in one thread and polled in another: the ring is armed on the first poll, and its
// completions are posted by task work of the thread that armed it.
unsafe impl Send for BufRing {}

impl BufRing {
    const BYTES: usize = URING_BUFS * std::mem::size_of::<types::BufRingEntry>();

    fn new() -> io::Result<BufRing> {
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(BufRing {
            base: base.cast(),
            tail: 0,
        })
    }

    /// Queues buffer `bid` at `addr` (not yet visible to the kernel: see [`BufRing::publish`]).
    fn push(&mut self, bid: u16, addr: *mut u8) {
        let index = usize::from(self.tail) & (URING_BUFS - 1);
        // SAFETY: `index < URING_BUFS`, inside the mapping; the kernel only reads entries
        // between its head and the published tail, and this one is past the published tail.
        let entry = unsafe { &mut *self.base.add(index) };
        entry.set_addr(addr as u64);
        entry.set_len(DATAGRAM_MAX as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: `base` is the ring's first entry, initialised by the kernel-visible mapping
        // (zeroed) and our pushes, and page-aligned (mmap).
        let tail = unsafe { types::BufRingEntry::tail(self.base) } as *const AtomicU16;
        // Release: makes the entry writes in `push` visible before the tail; pairs with the
        // kernel's smp_load_acquire of the tail in io_ring_buffer_select.
        // SAFETY: the tail field is a naturally aligned u16 inside the mapping, and the kernel
        // reads it only atomically.
        unsafe { (*tail).store(self.tail, Ordering::Release) };
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: `base` came from mmap with this length; the ring that used it was dropped (or
        // unregistered it) first (field order in `UringRx`).
        unsafe { libc::munmap(self.base.cast(), Self::BYTES) };
    }
}

/// The ring, its buffers, and a multishot receive armed on each of its sockets.
pub struct UringRx {
    // Field order matters: the ring drops (and the kernel lets go of the buffers) before the
    // buffer ring is unmapped and the buffers are freed.
    ring: IoUring,
    buf_ring: Option<BufRing>,
    /// `URING_BUFS * DATAGRAM_MAX` bytes; buffer `bid` is `bufs[bid * DATAGRAM_MAX..]`.
    bufs: Box<[u8]>,
    /// The sockets, in the order they were added: socket `i` is `fds[i]` for `i < sockets`.
    fds: [RawFd; URING_SOCKETS_MAX],
    sockets: usize,
    /// Socket `i`'s multishot receive is in the kernel (set on submit, cleared by a final
    /// completion).
    armed: [bool; URING_SOCKETS_MAX],
    /// Buffers to hand back after the completions that used them were reaped.
    recycle: Vec<u16>,
    /// Times the kernel ended the multishot receive and we armed it again.
    pub rearms: u64,
}

impl std::fmt::Debug for UringRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringRx")
            .field("fds", &&self.fds[..self.sockets])
            .field("buffers", &self.buffers())
            .field("sockets", &self.sockets)
            .field("armed", &&self.armed[..self.sockets])
            .field("rearms", &self.rearms)
            .finish()
    }
}

impl UringRx {
    /// Sets up a ring with no socket yet ([`UringRx::add`] adds them); `buffers` None tries the
    /// buffer ring, then classic.
    pub fn new(buffers: Option<UringBuffers>) -> io::Result<UringRx> {
        // Cooperative task running (5.19+): a completion arriving while this thread runs in
        // user space sets IORING_SQ_TASKRUN instead of interrupting it; `recv` enters the
        // kernel only then. A sleeping thread is still woken. Older kernels refuse the flags.
        let ring = match IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(SQ_ENTRIES)
        {
            Ok(ring) => ring,
            Err(_) => IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)?,
        };
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::other(
                "the kernel lacks IORING_FEAT_EXT_ARG (a wait with a timeout; 5.11+)",
            ));
        }
        let mut rx = UringRx {
            ring,
            buf_ring: None,
            bufs: vec![0u8; URING_BUFS * DATAGRAM_MAX].into_boxed_slice(),
            fds: [-1; URING_SOCKETS_MAX],
            sockets: 0,
            armed: [false; URING_SOCKETS_MAX],
            recycle: Vec::with_capacity(URING_BUFS),
            rearms: 0,
        };
        let ring_error = if buffers != Some(UringBuffers::Classic) {
            match rx.register_buf_ring() {
                Ok(()) => return Ok(rx),
                Err(e) if buffers == Some(UringBuffers::Ring) => return Err(e),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        rx.provide_all_classic().map_err(|e| match ring_error {
            Some(r) => io::Error::new(
                e.kind(),
                format!("buffer ring: {r}; IORING_OP_PROVIDE_BUFFERS: {e}"),
            ),
            None => e,
        })?;
        Ok(rx)
    }

    fn register_buf_ring(&mut self) -> io::Result<()> {
        let mut buf_ring = BufRing::new()?;
        for bid in 0..URING_BUFS {
            let addr = self.buf_addr(bid as u16);
            buf_ring.push(bid as u16, addr);
        }
        buf_ring.publish();
        // SAFETY: the mapping holds URING_BUFS entries and lives in `self.buf_ring` until after
        // the ring is dropped (field order), which releases the registration.
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                buf_ring.base as u64,
                URING_BUFS as u16,
                BGID,
                0,
            )?;
        }
        self.buf_ring = Some(buf_ring);
        Ok(())
    }

    fn provide_all_classic(&mut self) -> io::Result<()> {
        let entry = opcode::ProvideBuffers::new(
            self.bufs.as_mut_ptr(),
            DATAGRAM_MAX as i32,
            URING_BUFS as u16,
            BGID,
            0,
        )
        .build()
        .user_data(USER_DATA_PROVIDE);
        // SAFETY: the entry covers `bufs`, which lives as long as the ring (field order).
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.ring.submit_and_wait(1)?;
        let cqe = self
            .ring
            .completion()
            .next()
            .ok_or_else(|| io::Error::other("no completion for IORING_OP_PROVIDE_BUFFERS"))?;
        if cqe.result() < 0 {
            return Err(io::Error::from_raw_os_error(-cqe.result()));
        }
        Ok(())
    }

    /// Adds `socket` (armed on the next [`UringRx::wait`] or [`UringRx::recv`]); returns its
    /// index, which [`UringRx::recv`] passes with each of its datagrams. Adding a socket again
    /// returns its index.
    pub fn add(&mut self, socket: &UdpSocket) -> usize {
        let fd = socket.as_raw_fd();
        if let Some(i) = self.index_of(fd) {
            return i;
        }
        assert!(
            self.sockets < URING_SOCKETS_MAX,
            "an io_uring receive ring serves at most {URING_SOCKETS_MAX} sockets"
        );
        self.fds[self.sockets] = fd;
        self.sockets += 1;
        self.sockets - 1
    }

    /// The index of the socket with descriptor `fd`, if it was added.
    pub fn index_of(&self, fd: RawFd) -> Option<usize> {
        self.fds[..self.sockets].iter().position(|&f| f == fd)
    }

    pub fn buffers(&self) -> UringBuffers {
        if self.buf_ring.is_some() {
            UringBuffers::Ring
        } else {
            UringBuffers::Classic
        }
    }

    /// The ring's descriptor: readable when completions wait (for a caller that polls it
    /// beside other descriptors; [`UringRx::wait`] needs no `poll(2)`).
    pub fn wait_fd(&mut self) -> io::Result<RawFd> {
        self.arm()?;
        Ok(self.ring.as_raw_fd())
    }

    /// Waits up to `timeout` until a completion is ready (returns at once if one is): one
    /// `io_uring_enter` for every socket of the ring. A timeout or a signal is not an error.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.arm()?;
        if !self.ring.completion().is_empty() {
            return Ok(());
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn buf_addr(&mut self, bid: u16) -> *mut u8 {
        // SAFETY: bid < URING_BUFS, so the offset stays inside `bufs`.
        unsafe { self.bufs.as_mut_ptr().add(usize::from(bid) * DATAGRAM_MAX) }
    }

    /// Arms the multishot receive of every socket whose receive the kernel ended (or that was
    /// never armed) and submits whatever is queued (arming, classic buffer returns).
    fn arm(&mut self) -> io::Result<()> {
        for i in 0..self.sockets {
            if self.armed[i] {
                continue;
            }
            let entry = opcode::RecvMulti::new(types::Fd(self.fds[i]), BGID)
                .build()
                .user_data(USER_DATA_RECV + i as u64);
            // SAFETY: the request names no memory of ours: the kernel picks buffers from the
            // group, which outlives the ring (field order).
            unsafe { self.ring.submission().push(&entry) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            self.armed[i] = true;
        }
        // No system call when nothing is queued and no task work waits: the receive
        // completions are posted by task work that runs whenever this thread leaves the kernel
        // (the caller's poll(2) included), and reaping them is a read of shared memory.
        let pending = {
            let mut sq = self.ring.submission();
            sq.sync();
            !sq.is_empty() || sq.taskrun()
        };
        if pending {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Calls `each(socket index, datagram)` with every datagram the kernel has completed, for
    /// every socket (at most [`URING_BUFS`]); returns how many. Never blocks.
    pub fn recv(&mut self, mut each: impl FnMut(usize, &[u8])) -> io::Result<usize> {
        self.arm()?;
        let mut n = 0;
        let mut error = None;
        let mut ended = false;
        {
            let bufs = &self.bufs;
            let recycle = &mut self.recycle;
            let armed = &mut self.armed;
            let sockets = self.sockets as u64;
            for cqe in self.ring.completion() {
                let (res, flags, user_data) = (cqe.result(), cqe.flags(), cqe.user_data());
                if (USER_DATA_RECV..USER_DATA_RECV + sockets).contains(&user_data) {
                    let socket = (user_data - USER_DATA_RECV) as usize;
                    if !cqueue::more(flags) {
                        armed[socket] = false;
                        ended = true;
                    }
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        if res >= 0 {
                            let start = usize::from(bid) * DATAGRAM_MAX;
                            let len = (res as usize).min(DATAGRAM_MAX);
                            each(socket, &bufs[start..start + len]);
                            n += 1;
                        }
                        recycle.push(bid);
                    } else if res < 0 && res != -libc::ENOBUFS && res != -libc::EAGAIN {
                        error = Some(io::Error::from_raw_os_error(-res));
                    }
                } else if user_data == USER_DATA_PROVIDE && res < 0 {
                    error = Some(io::Error::from_raw_os_error(-res));
                }
            }
        }
        self.recycle_buffers()?;
        if ended {
            self.rearms += 1;
            self.arm()?;
        }
        match error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    fn recycle_buffers(&mut self) -> io::Result<()> {
        if self.recycle.is_empty() {
            return Ok(());
        }
        if self.buf_ring.is_some() {
            for i in 0..self.recycle.len() {
                let bid = self.recycle[i];
                let addr = self.buf_addr(bid);
                self.buf_ring
                    .as_mut()
                    .expect("checked above")
                    .push(bid, addr);
            }
            self.buf_ring.as_ref().expect("checked above").publish();
        } else {
            for i in 0..self.recycle.len() {
                let bid = self.recycle[i];
                let entry = opcode::ProvideBuffers::new(
                    self.buf_addr(bid),
                    DATAGRAM_MAX as i32,
                    1,
                    BGID,
                    bid,
                )
                .build()
                .user_data(USER_DATA_PROVIDE);
                // SAFETY: the entry covers buffer `bid` inside `bufs`, which outlives the ring.
                while unsafe { self.ring.submission().push(&entry) }.is_err() {
                    // Full: hand what is queued to the kernel and push again.
                    self.ring.submit()?;
                }
            }
            self.ring.submit()?;
        }
        self.recycle.clear();
        Ok(())
    }
}

/// Tries the whole path (ring, buffers, multishot receive) on a throwaway loopback socket;
/// Ok names the buffer provision that works, Err says why io_uring receive cannot be used.
pub fn probe(buffers: Option<UringBuffers>) -> Result<UringBuffers, String> {
    let rx_socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("probe socket: {e}"))?;
    rx_socket
        .set_nonblocking(true)
        .map_err(|e| format!("probe socket: {e}"))?;
    let mut rx = UringRx::new(buffers).map_err(|e| format!("io_uring setup: {e}"))?;
    rx.add(&rx_socket);
    let tx = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("probe socket: {e}"))?;
    let to = rx_socket
        .local_addr()
        .map_err(|e| format!("probe socket: {e}"))?;
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut got = 0;
    while got < 2 && Instant::now() < deadline {
        tx.send_to(b"probe", to)
            .map_err(|e| format!("probe send: {e}"))?;
        rx.wait(Duration::from_millis(20))
            .map_err(|e| format!("io_uring wait: {e}"))?;
        let mut ok = true;
        got += rx
            .recv(|socket, p| ok &= socket == 0 && p == b"probe")
            .map_err(|e| format!("multishot IORING_OP_RECV: {e}"))?;
        if !ok {
            return Err("multishot IORING_OP_RECV returned bytes that were not sent".into());
        }
    }
    if got < 2 {
        return Err("multishot IORING_OP_RECV delivered nothing within 500 ms".into());
    }
    Ok(rx.buffers())
}
