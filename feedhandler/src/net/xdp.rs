//! AF_XDP receive (cargo feature `af-xdp`): a UMEM of [`XDP_FRAMES`] frames, its fill and
//! completion rings, an RX ring, and a 17-instruction XDP program, loaded through the `bpf(2)`
//! system call, that redirects IPv4/UDP datagrams for one port to the socket bound to the
//! receiving queue (everything else passes to the stack). Raw system calls, no libbpf: the
//! program is hand-assembled below, so the feature adds no dependency and builds in seconds.
//!
//! Copy mode (`XDP_COPY`) and generic XDP (`XDP_FLAGS_SKB_MODE`): they work on every driver,
//! veth included; zero-copy needs driver support a test cannot assume. The program attaches
//! through a BPF link, so it detaches when the link's descriptor closes (also when the process
//! dies): no stale program is left on the interface.
//!
//! The user-space half parses Ethernet, IPv4 (any header length) and UDP to reach the packet.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// UMEM frames (also the fill and RX ring sizes): 2048 × 2 KiB = 4 MiB.
pub const XDP_FRAMES: usize = 2048;
/// Bytes per UMEM frame (the smallest chunk the kernel takes; an MTU-sized frame fits).
pub const XDP_FRAME_BYTES: usize = 2048;
const COMPLETION_ENTRIES: u32 = 64;

const _: () = assert!(XDP_FRAMES.is_power_of_two());
const _: () = assert!(XDP_FRAME_BYTES.is_power_of_two() && XDP_FRAME_BYTES >= 2048);

// bpf(2) commands, map and program types, attach type and flags (linux/bpf.h, if_link.h).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

/// `union bpf_attr`, as bytes: each command writes its fields at their offsets; the rest stays
/// zero, which the kernel requires.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> BpfAttr {
        BpfAttr([0; 128])
    }
    fn u32_at(&mut self, offset: usize, v: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, offset: usize, v: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live 128-byte, 8-aligned buffer whose pointers (set by the callers)
    // point at memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<BpfAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// One eBPF instruction: opcode, dst | src << 4, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = dst | (src << 4);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// The XDP program: redirect IPv4 (no options) UDP to `port` into `xskmap[rx_queue_index]`,
/// pass everything else (and pass when the queue has no socket: redirect_map's flags).
fn program(map_fd: RawFd, port: u16) -> Vec<[u8; 8]> {
    const LDXW: u8 = 0x61;
    const LDXH: u8 = 0x69;
    const LDXB: u8 = 0x71;
    const MOV64_X: u8 = 0xbf;
    const MOV64_K: u8 = 0xb7;
    const ADD64_K: u8 = 0x07;
    const JGT_X: u8 = 0x2d;
    const JNE_K: u8 = 0x55;
    const LD_IMM64: u8 = 0x18;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    const PSEUDO_MAP_FD: u8 = 1;
    // 16-bit loads read network byte order into a little-endian register.
    let ethertype_ipv4 = i32::from(u16::from_le_bytes(0x0800u16.to_be_bytes()));
    let port_be = i32::from(u16::from_le_bytes(port.to_be_bytes()));
    // Jump offsets count instructions after the jump; `pass` is the last two instructions.
    let p = vec![
        insn(MOV64_X, 6, 1, 0, 0),                   // 0: r6 = ctx
        insn(LDXW, 2, 1, 0, 0),                      // 1: r2 = ctx->data
        insn(LDXW, 3, 1, 4, 0),                      // 2: r3 = ctx->data_end
        insn(MOV64_X, 4, 2, 0, 0),                   // 3: r4 = data
        insn(ADD64_K, 4, 0, 0, 42),                  // 4: r4 += eth 14 + ipv4 20 + udp 8
        insn(JGT_X, 4, 3, 14, 0),                    // 5: if r4 > data_end goto pass (20)
        insn(LDXH, 5, 2, 12, 0),                     // 6: r5 = ethertype
        insn(JNE_K, 5, 0, 12, ethertype_ipv4),       // 7: not IPv4: pass
        insn(LDXB, 5, 2, 14, 0),                     // 8: r5 = version | ihl
        insn(JNE_K, 5, 0, 10, 0x45),                 // 9: options or not v4: pass
        insn(LDXB, 5, 2, 23, 0),                     // 10: r5 = protocol
        insn(JNE_K, 5, 0, 8, 17),                    // 11: not UDP: pass
        insn(LDXH, 5, 2, 36, 0),                     // 12: r5 = UDP destination port
        insn(JNE_K, 5, 0, 6, port_be),               // 13: another port: pass
        insn(LDXW, 2, 6, 16, 0),                     // 14: r2 = ctx->rx_queue_index
        insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd), // 15-16: r1 = &xskmap
        insn(0, 0, 0, 0, 0),
        insn(MOV64_K, 3, 0, 0, XDP_PASS), // 17: r3 = XDP_PASS (no socket on this queue)
        insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP), // 18: r0 = redirect_map(r1, r2, r3)
        insn(EXIT, 0, 0, 0, 0),           // 19: return r0
        insn(MOV64_K, 0, 0, 0, XDP_PASS), // 20: pass: r0 = XDP_PASS
        insn(EXIT, 0, 0, 0, 0),           // 21
    ];
    p
}

/// A mapped region, unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; moving it moves its only user-space user.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: RawFd, len: usize, offset: u64) -> io::Result<Mapping> {
        // SAFETY: no address hint; a shared mapping of `fd` at `offset` (or anonymous memory
        // when `fd` is -1); the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                if fd < 0 {
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS
                } else {
                    libc::MAP_SHARED | libc::MAP_POPULATE
                },
                fd,
                offset as libc::off_t,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            addr: addr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr` and `len` came from mmap; nothing borrows the mapping any more.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// A single-producer single-consumer ring shared with the kernel.
struct Ring {
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
}

// SAFETY: the pointers point into `map`, which this value owns and moves with it; only the
// owning thread touches the ring's user-space side.
unsafe impl Send for Ring {}

impl Ring {
    fn new(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        entries: u32,
        entry_bytes: usize,
        pgoff: u64,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + entries as usize * entry_bytes;
        let map = Mapping::new(fd, len, pgoff)?;
        // SAFETY: the kernel's offsets lie inside the mapping it sized for `entries`, and its
        // producer and consumer are naturally aligned u32s.
        let producer = unsafe { map.addr.add(off.producer as usize) } as *const AtomicU32;
        // SAFETY: as above.
        let consumer = unsafe { map.addr.add(off.consumer as usize) } as *const AtomicU32;
        // SAFETY: as above.
        let desc = unsafe { map.addr.add(off.desc as usize) };
        Ok(Ring {
            _map: map,
            producer,
            consumer,
            desc,
            mask: entries - 1,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map`, alive as long as `self`.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map`, alive as long as `self`.
        unsafe { &*self.consumer }
    }
}

/// An AF_XDP socket receiving one UDP port on one interface queue.
pub struct XdpRx {
    // Field order: the link (program) and the socket close before the rings and UMEM unmap.
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
    xsk: OwnedFd,
    rx: Ring,
    fill: Ring,
    _completion: Ring,
    umem: Mapping,
    port: u16,
    /// Frames whose datagrams were delivered, returned to the fill ring at the end of a call.
    pub packets: u64,
    /// Frames that were not IPv4/UDP to our port (cannot happen with our program; counted).
    pub foreign: u64,
}

impl std::fmt::Debug for XdpRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpRx")
            .field("port", &self.port)
            .field("packets", &self.packets)
            .finish()
    }
}

/// The index of the interface that owns `addr` (the line's address or interface address).
pub fn ifindex_of(addr: Ipv4Addr) -> io::Result<u32> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` receives a list the C library allocates; freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the live list.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: non-null address of the node's family.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: AF_INET addresses are sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
                    // SAFETY: the node's name is a NUL-terminated string.
                    found = Some(unsafe { libc::if_nametoindex(ifa.ifa_name) });
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    match found {
        Some(i) if i > 0 => Ok(i),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface owns {addr}"),
        )),
    }
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl XdpRx {
    /// Opens an AF_XDP socket on queue 0 of the interface that owns `line`'s address (or its
    /// multicast interface), loads and attaches the program for `line`'s port. Every error
    /// names the step that failed.
    pub fn open(line: SocketAddrV4, iface: Ipv4Addr) -> io::Result<XdpRx> {
        let step = |what: &'static str| {
            move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let owner = if line.ip().is_multicast() {
            iface
        } else {
            *line.ip()
        };
        let ifindex = ifindex_of(owner).map_err(step("interface"))?;
        let queue = 0u32;

        // SAFETY: plain socket(2) call; the result is checked.
        let xsk = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW, 0) };
        if xsk < 0 {
            return Err(step("AF_XDP socket")(io::Error::last_os_error()));
        }
        let xsk = owned(xsk as libc::c_long);
        let fd = xsk.as_raw_fd();

        let umem = Mapping::new(-1, XDP_FRAMES * XDP_FRAME_BYTES, 0).map_err(step("UMEM"))?;
        let reg = libc::xdp_umem_reg {
            addr: umem.addr as u64,
            len: umem.len as u64,
            chunk_size: XDP_FRAME_BYTES as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, libc::XDP_UMEM_REG, &reg).map_err(step("XDP_UMEM_REG"))?;
        let frames = XDP_FRAMES as u32;
        setsockopt(fd, libc::XDP_UMEM_FILL_RING, &frames).map_err(step("fill ring"))?;
        setsockopt(fd, libc::XDP_UMEM_COMPLETION_RING, &COMPLETION_ENTRIES)
            .map_err(step("completion ring"))?;
        setsockopt(fd, libc::XDP_RX_RING, &frames).map_err(step("RX ring"))?;

        // SAFETY: all-zero is a valid xdp_mmap_offsets; the kernel fills it.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is live and `len` its size.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(step("XDP_MMAP_OFFSETS")(io::Error::last_os_error()));
        }
        let rx = Ring::new(
            fd,
            &off.rx,
            frames,
            std::mem::size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_RX_RING as u64,
        )
        .map_err(step("RX ring mmap"))?;
        let fill = Ring::new(fd, &off.fr, frames, 8, libc::XDP_UMEM_PGOFF_FILL_RING)
            .map_err(step("fill ring mmap"))?;
        let completion = Ring::new(
            fd,
            &off.cr,
            COMPLETION_ENTRIES,
            8,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(step("completion ring mmap"))?;

        // Every frame goes to the kernel before bind, so the first packets find room.
        for i in 0..frames {
            // SAFETY: slot i < entries inside the fill ring's descriptor array (u64 each).
            unsafe {
                *(fill.desc as *mut u64).add(i as usize) = u64::from(i) * XDP_FRAME_BYTES as u64
            };
        }
        // Release: the addresses above before the producer; pairs with the kernel's acquire.
        fill.producer().store(frames, Ordering::Release);

        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_COPY,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sxdp` is a live sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(
                fd,
                (&sxdp as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(step("bind to the interface queue")(
                io::Error::last_os_error(),
            ));
        }

        let mut attr = BpfAttr::new();
        attr.u32_at(0, BPF_MAP_TYPE_XSKMAP)
            .u32_at(4, 4)
            .u32_at(8, 4)
            .u32_at(12, 1);
        let map = owned(bpf(BPF_MAP_CREATE, &mut attr).map_err(step("BPF_MAP_CREATE (XSKMAP)"))?);
        let (key, value) = (queue, fd as u32);
        let mut attr = BpfAttr::new();
        attr.u32_at(0, map.as_raw_fd() as u32)
            .u64_at(8, &key as *const u32 as u64)
            .u64_at(16, &value as *const u32 as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map_err(step("XSKMAP update"))?;

        let insns = program(map.as_raw_fd(), line.port());
        let license = c"GPL";
        let mut log = vec![0u8; 64 * 1024];
        let mut attr = BpfAttr::new();
        attr.u32_at(0, BPF_PROG_TYPE_XDP)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64)
            .u32_at(24, 1)
            .u32_at(28, log.len() as u32)
            .u64_at(32, log.as_mut_ptr() as u64)
            .u32_at(68, BPF_XDP);
        let prog = match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => owned(fd),
            Err(e) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let verifier = String::from_utf8_lossy(&log[..end]);
                let last = verifier.lines().last().unwrap_or("").to_string();
                return Err(io::Error::new(
                    e.kind(),
                    format!("BPF_PROG_LOAD: {e} (verifier: {last})"),
                ));
            }
        };
        let mut attr = BpfAttr::new();
        attr.u32_at(0, prog.as_raw_fd() as u32)
            .u32_at(4, ifindex)
            .u32_at(8, BPF_XDP)
            .u32_at(12, XDP_FLAGS_SKB_MODE);
        let link =
            owned(bpf(BPF_LINK_CREATE, &mut attr).map_err(step("BPF_LINK_CREATE (attach XDP)"))?);
        Ok(XdpRx {
            _link: link,
            _prog: prog,
            _map: map,
            xsk,
            rx,
            fill,
            _completion: completion,
            umem,
            port: line.port(),
            packets: 0,
            foreign: 0,
        })
    }

    /// Readable when the RX ring holds descriptors.
    pub fn wait_fd(&self) -> RawFd {
        self.xsk.as_raw_fd()
    }

    /// Calls `each` with the UDP payload of every frame in the RX ring; returns how many.
    pub fn recv(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        // Acquire: the descriptors and frame bytes before the producer; pairs with the
        // kernel's release in xskq_prod_submit.
        let prod = self.rx.producer().load(Ordering::Acquire);
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        let fill_prod = self.fill.producer().load(Ordering::Relaxed);
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            let slot = (cons.wrapping_add(i) & self.rx.mask) as usize;
            // SAFETY: the slot is between the consumer and the producer the kernel published.
            let desc = unsafe { *(self.rx.desc as *const libc::xdp_desc).add(slot) };
            let addr = desc.addr as usize;
            let len = (desc.len as usize).min(XDP_FRAME_BYTES);
            if addr + len <= self.umem.len {
                // SAFETY: the frame lies inside the UMEM (checked) and the kernel does not
                // write it until we give its address back through the fill ring below.
                let frame = unsafe { std::slice::from_raw_parts(self.umem.addr.add(addr), len) };
                match udp_payload(frame, self.port) {
                    Some(payload) => {
                        each(payload);
                        self.packets += 1;
                    }
                    None => self.foreign += 1,
                }
            }
            let fslot = (fill_prod.wrapping_add(i) & self.fill.mask) as usize;
            let frame_base = (addr as u64) & !(XDP_FRAME_BYTES as u64 - 1);
            // SAFETY: the fill ring has room: it gives back exactly the frames just consumed.
            unsafe { *(self.fill.desc as *mut u64).add(fslot) = frame_base };
        }
        if n > 0 {
            // Release: we are done reading the frames; pairs with the kernel's acquire.
            self.rx.consumer().store(prod, Ordering::Release);
            // Release: the fill addresses before the producer; pairs with the kernel's acquire.
            self.fill
                .producer()
                .store(fill_prod.wrapping_add(n), Ordering::Release);
        }
        n as usize
    }
}

/// The UDP payload of an Ethernet / IPv4 / UDP frame to `port`, or None.
pub fn udp_payload(frame: &[u8], port: u16) -> Option<&[u8]> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 17 || ip.len() < ihl + 8 {
        return None;
    }
    let udp = &ip[ihl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != port {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    Some(&udp[8..udp_len])
}

/// Moves the calling thread into the network namespace at `path` (e.g. `/var/run/netns/x`):
/// tests put a publisher thread on the far end of a veth pair.
pub fn enter_netns(path: &std::path::Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: a valid namespace descriptor; setns changes only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `ip ARGS`; Err carries its standard error.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Is this process root (what namespaces, veth pairs and `bpf(2)` need)?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A network namespace and a veth pair between it and this namespace, for the AF_XDP test and
/// bench (a publisher in the namespace, the subscriber on the host end); removed on drop.
/// Needs root and the `ip` tool.
#[derive(Debug)]
pub struct VethPair {
    /// The namespace's name (`/var/run/netns/NAME`).
    pub ns: String,
    /// The host end's interface name.
    pub host_end: String,
}

impl VethPair {
    /// Creates namespace and pair: the host end gets `host_ip/24`, the other end (moved into
    /// the namespace) `ns_ip/24`; both up. `tag` keeps concurrent pairs of one process apart.
    pub fn create(host_ip: Ipv4Addr, ns_ip: Ipv4Addr, tag: &str) -> Result<VethPair, String> {
        let id = std::process::id() % 100_000;
        let veth = VethPair {
            ns: format!("sqfeed-{id}-{tag}"),
            host_end: format!("sqfa{id}{tag}"),
        };
        let ns_end = format!("sqfb{id}{tag}");
        ip(&["netns", "add", &veth.ns])?;
        ip(&[
            "link",
            "add",
            &veth.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &ns_end,
        ])?;
        ip(&["link", "set", &ns_end, "netns", &veth.ns])?;
        ip(&[
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            &veth.host_end,
        ])?;
        ip(&["link", "set", &veth.host_end, "up"])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &veth.ns, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        in_ns(&["addr", "add", &format!("{ns_ip}/24"), "dev", &ns_end])?;
        in_ns(&["link", "set", &ns_end, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        Ok(veth)
    }

    /// The namespace's path, for [`enter_netns`].
    pub fn ns_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/var/run/netns/{}", self.ns))
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_end]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}
