//! Connections to external FastCGI applications: connect (TCP or Unix socket), keep idle
//! connections for reuse, and drive one request with the request body going out while the
//! response comes in (poll on one socket, never a deadlock when the application answers
//! before it has read everything).

use bastion_seal::fcgi::{Decoder, Event, FcgiError};
use bastion_seal::gateway::{AppAddress, ExternalServer};
use rustix::event::{PollFd, PollFlags, Timespec};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle connections kept per application and process.
const MAX_IDLE: usize = 16;
/// Size of one read from the application.
const READ_CHUNK: usize = 64 * 1024;

/// One `FastCgiExternalServer`: its settings and its idle connections in this process.
#[derive(Debug)]
pub struct AppServer {
    /// The directive's values.
    pub spec: ExternalServer,
    /// `file:line` of the directive, for messages.
    pub defined_at: String,
    idle: Mutex<Vec<AppStream>>,
}

/// A connection to an application.
#[derive(Debug)]
pub enum AppStream {
    /// `-host`
    Tcp(TcpStream),
    /// `-socket`
    Unix(UnixStream),
}

impl AppStream {
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            AppStream::Tcp(s) => s.set_nonblocking(on),
            AppStream::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// True if the peer has not closed the connection and sent nothing unasked.
    fn is_idle_alive(&mut self) -> bool {
        if self.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(self.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
    }
}

impl Read for AppStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            AppStream::Tcp(s) => s.read(buf),
            AppStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for AppStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            AppStream::Tcp(s) => s.write(buf),
            AppStream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsFd for AppStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            AppStream::Tcp(s) => s.as_fd(),
            AppStream::Unix(s) => s.as_fd(),
        }
    }
}

impl AppServer {
    /// A server with no connections yet.
    pub fn new(spec: ExternalServer, defined_at: String) -> Self {
        AppServer {
            spec,
            defined_at,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection that is still open, or a new one. The bool says whether it
    /// was reused.
    pub fn checkout(&self) -> std::io::Result<(AppStream, bool)> {
        loop {
            let c = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match c {
                Some(mut s) => {
                    if s.is_idle_alive() {
                        return Ok((s, true));
                    }
                }
                None => break,
            }
        }
        Ok((self.connect()?, false))
    }

    /// Keeps a connection whose last request ended cleanly.
    pub fn checkin(&self, s: AppStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(s);
        }
    }

    fn connect(&self) -> std::io::Result<AppStream> {
        let timeout = (!self.spec.connect_timeout.is_zero()).then_some(self.spec.connect_timeout);
        match &self.spec.address {
            AppAddress::Tcp(hp) => {
                let mut last = std::io::Error::new(ErrorKind::NotFound, "no address");
                for a in hp.to_socket_addrs()? {
                    let r = match timeout {
                        Some(t) => TcpStream::connect_timeout(&a, t),
                        None => TcpStream::connect(a),
                    };
                    match r {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            return Ok(AppStream::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            AppAddress::Unix(p) => Ok(AppStream::Unix(UnixStream::connect(p)?)),
        }
    }
}

/// What the response side wants after an event.
pub enum Flow {
    /// Keep going.
    Continue,
    /// The response is complete as far as the client is concerned: stop reading; the
    /// connection is not reused.
    Stop,
}

/// Why an exchange ended early.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Reading or writing the application's socket failed.
    #[error("connection to the application failed: {0}")]
    Io(#[from] std::io::Error),
    /// The application was silent for longer than `-idle-timeout`.
    #[error("the application did not answer within {0:?} (-idle-timeout)")]
    Timeout(Duration),
    /// The application closed the connection before ending the request.
    #[error("the application closed the connection before the end of the response")]
    Eof,
    /// The application broke the protocol.
    #[error("the application broke the FastCGI protocol: {0}")]
    Protocol(#[from] FcgiError),
    /// The request side (client body, encryption) stopped the exchange; already logged.
    #[error("request side: {0}")]
    Input(String),
    /// The response side stopped the exchange; already logged and answered.
    #[error("response side: {0}")]
    Output(String),
}

/// How an exchange ended.
pub enum Ended {
    /// `END_REQUEST` arrived; the connection can be reused.
    Clean(AppStream),
    /// The response side was satisfied before the end; drop the connection.
    Stopped,
}

/// The two sides of one request, driven by [`exchange`].
pub trait Sides {
    /// Appends the next STDIN records to `out`; returns `true` once the final, empty
    /// STDIN record has been appended.
    fn next_input(&mut self, out: &mut Vec<u8>) -> Result<bool, String>;
    /// Handles one decoded record of the application.
    fn on_event(&mut self, ev: Event) -> Result<Flow, String>;
}

/// Drives one request on `stream`.
///
/// `out` holds the records to send first (BEGIN_REQUEST and PARAMS). Whenever it has been
/// sent, `sides` is asked for more input; every decoded record is handed to it.
pub fn exchange(
    mut stream: AppStream,
    request_id: u16,
    mut out: Vec<u8>,
    idle_timeout: Duration,
    sides: &mut impl Sides,
) -> Result<Ended, ExchangeError> {
    stream.set_nonblocking(true)?;
    let mut decoder = Decoder::new(request_id);
    let mut pos = 0usize;
    let mut input_done = false;
    let mut rbuf = vec![0u8; READ_CHUNK];
    let mut events = Vec::new();
    let mut last_progress = Instant::now();
    loop {
        if pos == out.len() && !input_done {
            out.clear();
            pos = 0;
            input_done = sides.next_input(&mut out).map_err(ExchangeError::Input)?;
            last_progress = Instant::now();
        }
        let want_write = pos < out.len();
        let mut flags = PollFlags::IN;
        if want_write {
            flags |= PollFlags::OUT;
        }
        let mut left = idle_timeout.saturating_sub(last_progress.elapsed());
        if left.is_zero() {
            return Err(ExchangeError::Timeout(idle_timeout));
        }
        if !want_write && !input_done {
            // The last piece of input produced no records (a GCM segment still filling):
            // only look for output of the application, then read more input.
            left = Duration::ZERO;
        }
        let ts = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&stream, flags)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(ExchangeError::Io(e.into())),
        }
        let rev = fds[0].revents();
        if rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            match stream.read(&mut rbuf) {
                Ok(0) => return Err(ExchangeError::Eof),
                Ok(n) => {
                    last_progress = Instant::now();
                    decoder.push(&rbuf[..n], &mut events)?;
                    for ev in events.drain(..) {
                        if let Flow::Stop = sides.on_event(ev).map_err(ExchangeError::Output)? {
                            return Ok(Ended::Stopped);
                        }
                    }
                    if decoder.is_ended() {
                        if input_done && pos == out.len() {
                            stream.set_nonblocking(false)?;
                            return Ok(Ended::Clean(stream));
                        }
                        // The application answered before reading all input: the
                        // connection is in an unknown state.
                        return Ok(Ended::Stopped);
                    }
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(ExchangeError::Io(e)),
            }
        }
        if want_write && rev.contains(PollFlags::OUT) {
            match stream.write(&out[pos..]) {
                Ok(n) => {
                    pos += n;
                    last_progress = Instant::now();
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(ExchangeError::Io(e)),
            }
        }
    }
}
