//! `request_rec`: one HTTP request.

use super::ffi;
use super::table::Table;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A borrowed request.
pub struct Request<'a> {
    raw: NonNull<ffi::request_rec>,
    _life: PhantomData<&'a mut ffi::request_rec>,
}

/// The client went away while the response was being written.
#[derive(Debug, thiserror::Error)]
#[error("the client connection is gone")]
pub struct ClientGone;

/// Errors from reading a request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// httpd refused the body (e.g. bad chunking, over LimitRequestBody); the status to send.
    #[error("request body refused with status {0}")]
    Refused(super::Status),
    /// The client went away or sent garbage mid-body.
    #[error("reading the request body failed")]
    Read,
}

impl<'a> Request<'a> {
    /// # Safety
    /// `r` must be NULL or a request valid for `'a`, used by one thread at a time.
    pub unsafe fn from_raw(r: *mut ffi::request_rec) -> Option<Request<'a>> {
        NonNull::new(r).map(|raw| Request {
            raw,
            _life: PhantomData,
        })
    }

    /// The raw pointer, for calls into httpd.
    pub fn as_ptr(&self) -> *mut ffi::request_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &ffi::request_rec {
        // SAFETY: valid for 'a per from_raw.
        unsafe { &*self.raw.as_ptr() }
    }

    fn rec_mut(&mut self) -> &mut ffi::request_rec {
        // SAFETY: valid for 'a and used by this thread only.
        unsafe { &mut *self.raw.as_ptr() }
    }

    /// The method as sent (`GET`, `PUT`, ...).
    pub fn method(&self) -> &str {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().method) }.unwrap_or("")
    }

    /// Whether this is a HEAD request (send headers only).
    pub fn header_only(&self) -> bool {
        self.rec().header_only != 0
    }

    /// The path part of the URI (decoded).
    pub fn uri(&self) -> &str {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().uri) }.unwrap_or("")
    }

    /// The request target exactly as the client sent it (path and query, still escaped; the
    /// absolute form for proxy requests).
    pub fn unparsed_uri(&self) -> &str {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().unparsed_uri) }.unwrap_or("")
    }

    /// The query string, if any.
    pub fn args(&self) -> Option<&str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().args) }
    }

    /// The handler name set by SetHandler/AddHandler.
    pub fn handler(&self) -> Option<&str> {
        // SAFETY: NULL or a pool/config string.
        unsafe { super::cstr(self.rec().handler) }
    }

    /// The Host the request names (`r->hostname`).
    pub fn hostname(&self) -> Option<&str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().hostname) }
    }

    /// The authenticated user (`REMOTE_USER`).
    pub fn user(&self) -> Option<&str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().user) }
    }

    /// The file the URI maps to, if any.
    pub fn filename(&self) -> Option<&str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().filename) }
    }

    /// Whether this is the main request (not a subrequest or internal redirect).
    pub fn is_main(&self) -> bool {
        self.rec().main.is_null() && self.rec().prev.is_null()
    }

    /// Request headers.
    pub fn headers_in(&self) -> Table<'_> {
        // SAFETY: live table of this request.
        unsafe { Table::from_raw(self.rec().headers_in) }
    }

    /// Response headers (sent on success).
    pub fn headers_out(&mut self) -> Table<'_> {
        // SAFETY: live table of this request.
        unsafe { Table::from_raw(self.rec().headers_out) }
    }

    /// Response headers sent on errors too.
    pub fn err_headers_out(&mut self) -> Table<'_> {
        // SAFETY: live table of this request.
        unsafe { Table::from_raw(self.rec().err_headers_out) }
    }

    /// Request notes (for other modules).
    pub fn notes(&mut self) -> Table<'_> {
        // SAFETY: live table of this request.
        unsafe { Table::from_raw(self.rec().notes) }
    }

    /// The CGI/SSI environment (`SSL_*` variables go here).
    pub fn subprocess_env(&mut self) -> Table<'_> {
        // SAFETY: live table of this request.
        unsafe { Table::from_raw(self.rec().subprocess_env) }
    }

    /// Sets the response status.
    pub fn set_status(&mut self, status: super::Status) {
        self.rec_mut().status = status;
    }

    /// Sets the Content-Type of the response.
    pub fn set_content_type(&mut self, ct: &str) {
        let p = self.pool().pstrdup(ct);
        // SAFETY: the string lives in the request pool.
        unsafe { ffi::ap_set_content_type(self.as_ptr(), p) }
    }

    /// The request pool.
    pub fn pool(&self) -> super::Pool<'a> {
        // SAFETY: r->pool lives as long as the request.
        unsafe { super::Pool::from_raw(self.rec().pool) }.expect("request pool")
    }

    /// The virtual host serving the request.
    pub fn server(&self) -> super::Server<'a> {
        // SAFETY: r->server is valid for the request.
        unsafe { super::Server::from_raw(self.rec().server) }.expect("request server")
    }

    /// The connection the request came on.
    pub fn conn(&self) -> super::Conn<'a> {
        // SAFETY: r->connection is valid for the request.
        unsafe { super::Conn::from_raw(self.rec().connection) }.expect("request connection")
    }

    /// This module's per-directory configuration for the request.
    pub fn dir_config<D: super::config::ModuleConfig>(&self) -> &'a D {
        // SAFETY: per_dir_config is the request's merged config vector.
        unsafe { super::config::from_vector::<D>(self.rec().per_dir_config) }.expect("dir config")
    }

    /// Writes body bytes (through the output filters). Err if the client is gone.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ClientGone> {
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: ap_rwrite copies `data` into the request's output brigade.
        let n =
            unsafe { ffi::ap_rwrite(data.as_ptr() as *const _, data.len() as i32, self.as_ptr()) };
        if n < 0 { Err(ClientGone) } else { Ok(()) }
    }

    /// Reads the whole request body, at most `limit` bytes (for small bodies only; streaming
    /// handlers use [`Request::body_reader`]).
    pub fn read_body(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        let mut rd = self.body_reader()?;
        let mut buf = [0u8; 8192];
        loop {
            let n = rd.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > limit {
                return Err(BodyError::Refused(super::status::BAD_REQUEST));
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Starts reading the request body (Content-Length or chunked; dechunked by httpd).
    pub fn body_reader(&mut self) -> Result<BodyReader<'_, 'a>, BodyError> {
        let has = self.setup_body()?;
        Ok(BodyReader {
            req: self,
            done: !has,
        })
    }

    /// Prepares reading the request body; returns whether there is one. Then call
    /// [`Request::read_body_chunk`] until it returns 0 (or use [`Request::body_reader`]).
    pub fn setup_body(&mut self) -> Result<bool, BodyError> {
        // SAFETY: valid request; REQUEST_CHUNKED_DECHUNK lets httpd handle both framings.
        let rc = unsafe {
            ffi::ap_setup_client_block(self.as_ptr(), ffi::REQUEST_CHUNKED_DECHUNK as i32)
        };
        if rc != 0 {
            return Err(BodyError::Refused(rc));
        }
        // SAFETY: valid request after setup.
        Ok(unsafe { ffi::ap_should_client_block(self.as_ptr()) } != 0)
    }

    /// Reads up to `buf.len()` body bytes (after [`Request::setup_body`]); 0 at the end.
    pub fn read_body_chunk(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let cap = buf.len().min(i32::MAX as usize);
        // SAFETY: buf is writable for cap bytes; the request is set up for reading.
        let n = unsafe {
            ffi::ap_get_client_block(
                self.as_ptr(),
                buf.as_mut_ptr() as *mut _,
                cap as ffi::apr_size_t,
            )
        };
        if n < 0 {
            return Err(BodyError::Read);
        }
        Ok(n as usize)
    }

    /// The part of the URI after the file it maps to (`r->path_info`).
    pub fn path_info(&self) -> Option<&str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().path_info) }
    }

    /// The client's address as the request sees it (`r->useragent_ip`).
    pub fn useragent_ip(&self) -> &str {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().useragent_ip) }.unwrap_or("")
    }

    /// Sets the handler that will serve the request (from a fixups hook).
    pub fn set_handler(&mut self, name: &'static std::ffi::CStr) {
        self.rec_mut().handler = name.as_ptr();
    }

    /// Adds the CGI/1.1 variables (`ap_add_common_vars` and `ap_add_cgi_vars`:
    /// `REQUEST_METHOD`, `SCRIPT_NAME`, `PATH_INFO`, `HTTP_*`, ...) to
    /// [`Request::subprocess_env`].
    pub fn add_cgi_vars(&mut self) {
        // SAFETY: valid request; both functions only add to r->subprocess_env.
        unsafe {
            ffi::ap_add_common_vars(self.as_ptr());
            ffi::ap_add_cgi_vars(self.as_ptr());
        }
    }

    /// Sets `Content-Length` of the response.
    pub fn set_content_length(&mut self, len: u64) {
        // SAFETY: valid request.
        unsafe { ffi::ap_set_content_length(self.as_ptr(), len as ffi::apr_off_t) }
    }

    /// An empty brigade in the request pool, for [`Request::pass`].
    pub fn brigade(&self) -> super::brigade::Brigade {
        // SAFETY: the request pool and the connection's allocator are live for the request;
        // the brigade is used by this thread only.
        unsafe {
            super::brigade::Brigade::from_raw(ffi::apr_brigade_create(
                self.rec().pool,
                (*self.rec().connection).bucket_alloc,
            ))
        }
    }

    /// Passes `bb` down the request's output filters and empties it.
    /// Err if the client is gone.
    pub fn pass(&mut self, bb: &mut super::brigade::Brigade) -> Result<(), ClientGone> {
        // SAFETY: r->output_filters is the live head of this request's filter chain.
        let rv = unsafe { bb.pass_to(self.rec().output_filters) };
        bb.clear();
        if rv != super::brigade::rv::SUCCESS || self.conn().aborted() {
            Err(ClientGone)
        } else {
            Ok(())
        }
    }

    /// Ends a response whose body is already under way because its source broke: passes
    /// an error bucket (502) and EOS, so that the connection is closed and the client sees
    /// a cut response (no final chunk, or fewer bytes than `Content-Length`), never a
    /// complete-looking one.
    pub fn abort_response(&mut self) {
        let mut bb = self.brigade();
        bb.push_error(super::status::BAD_GATEWAY, &self.pool());
        bb.push_eos();
        let _ = self.pass(&mut bb);
        self.conn().set_keepalive_close();
    }

    /// The log target for this request.
    pub fn log_target(&self) -> super::log::Target {
        super::log::Target::Request(self.raw.as_ptr())
    }
}

/// Reads a request body in pieces.
pub struct BodyReader<'r, 'a> {
    req: &'r mut Request<'a>,
    done: bool,
}

impl BodyReader<'_, '_> {
    /// Reads up to `buf.len()` bytes; 0 at the end of the body.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let r = self.req.read_body_chunk(buf);
        if !matches!(r, Ok(n) if n > 0) {
            self.done = true;
        }
        r
    }
}
