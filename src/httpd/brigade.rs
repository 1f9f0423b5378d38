//! Bucket brigades: the lists of buckets httpd's filters pass data in.
//!
//! The APR ring macros (`APR_BRIGADE_FIRST`, `APR_BUCKET_REMOVE`, ...) and the inline bucket
//! operations (`apr_bucket_read`, `apr_bucket_delete`, ...) are re-done here over the raw
//! structs, with the ring invariants kept inside this module.

use super::ffi;
use std::ffi::c_void;
use std::os::raw::c_char;

/// APR status codes used by filters.
pub mod rv {
    use super::ffi;
    /// Success.
    pub const SUCCESS: ffi::apr_status_t = ffi::APR_SUCCESS as ffi::apr_status_t;
    /// End of input.
    pub const EOF: ffi::apr_status_t = ffi::APR_EOF as ffi::apr_status_t;
    /// Nothing available on a non-blocking read.
    pub const EAGAIN: ffi::apr_status_t = ffi::APR_EAGAIN as ffi::apr_status_t;
    /// Not implemented (a read mode we do not serve).
    pub const ENOTIMPL: ffi::apr_status_t = ffi::APR_ENOTIMPL as ffi::apr_status_t;
    /// Generic failure.
    pub const EGENERAL: ffi::apr_status_t = ffi::APR_EGENERAL as ffi::apr_status_t;
    /// Connection aborted.
    pub const ECONNABORTED: ffi::apr_status_t = ffi::APR_ECONNABORTED as ffi::apr_status_t;
    /// Timed out.
    pub const TIMEUP: ffi::apr_status_t = ffi::APR_TIMEUP as ffi::apr_status_t;
    /// Incomplete (a partition point past the end).
    pub const INCOMPLETE: ffi::apr_status_t = ffi::APR_INCOMPLETE as ffi::apr_status_t;
}

/// What a bucket carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Data (heap, file, pool, transient, ...).
    Data,
    /// End of stream.
    Eos,
    /// Flush what you have.
    Flush,
    /// End of connection: send close_notify and close.
    Eoc,
    /// Another metadata bucket (EOR, error, ...): pass it along.
    OtherMeta,
}

/// A brigade httpd gave us, or one we made in a pool.
pub struct Brigade {
    raw: *mut ffi::apr_bucket_brigade,
}

// SAFETY: a brigade belongs to one connection (or request), and httpd serves a connection
// on one thread at a time; the wrapper is only moved between those turns, never shared.
unsafe impl Send for Brigade {}

/// One bucket of a brigade (equal when it is the same bucket).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    raw: *mut ffi::apr_bucket,
}

impl Brigade {
    /// Wraps a brigade httpd handed to a filter.
    ///
    /// # Safety
    /// `bb` must be a live brigade used by this thread only while the wrapper is used.
    pub unsafe fn from_raw(bb: *mut ffi::apr_bucket_brigade) -> Brigade {
        Brigade { raw: bb }
    }

    /// Creates an empty brigade in the connection's pool (destroyed with it).
    pub fn for_conn(c: &super::Conn<'_>) -> Brigade {
        // SAFETY: the connection's pool and bucket allocator belong together and are live.
        Brigade {
            raw: unsafe { ffi::apr_brigade_create(c.pool().as_ptr(), c.bucket_alloc()) },
        }
    }

    /// The raw pointer, for calls into httpd.
    pub fn as_ptr(&self) -> *mut ffi::apr_bucket_brigade {
        self.raw
    }

    /// The brigade's bucket allocator.
    pub fn alloc(&self) -> *mut ffi::apr_bucket_alloc_t {
        // SAFETY: live brigade.
        unsafe { (*self.raw).bucket_alloc }
    }

    fn sentinel(&self) -> *mut ffi::apr_bucket {
        // SAFETY: APR_RING_SENTINEL: the list head, seen as a bucket whose `link` is at
        // offset 0 (link is apr_bucket's first field).
        unsafe { std::ptr::addr_of_mut!((*self.raw).list) as *mut ffi::apr_bucket }
    }

    /// The first bucket, if any.
    pub fn first(&self) -> Option<Bucket> {
        // SAFETY: live brigade; list.next is the first bucket or the sentinel.
        let f = unsafe { (*self.raw).list.next };
        (f != self.sentinel()).then_some(Bucket { raw: f })
    }

    /// The last bucket, if any.
    pub fn last(&self) -> Option<Bucket> {
        // SAFETY: as first.
        let l = unsafe { (*self.raw).list.prev };
        (l != self.sentinel()).then_some(Bucket { raw: l })
    }

    /// The bucket after `b` in this brigade, if any.
    pub fn next(&self, b: Bucket) -> Option<Bucket> {
        // SAFETY: b is in this brigade, so its link is valid.
        let n = unsafe { (*b.raw).link.next };
        (n != self.sentinel()).then_some(Bucket { raw: n })
    }

    /// The bucket before `b` in this brigade, if any.
    pub fn prev(&self, b: Bucket) -> Option<Bucket> {
        // SAFETY: b is in this brigade, so its link is valid.
        let p = unsafe { (*b.raw).link.prev };
        (p != self.sentinel()).then_some(Bucket { raw: p })
    }

    /// Whether the brigade has no buckets.
    pub fn is_empty(&self) -> bool {
        self.first().is_none()
    }

    fn insert_before(at: *mut ffi::apr_bucket, b: *mut ffi::apr_bucket) {
        // SAFETY: `at` is a bucket or sentinel of a live ring; `b` is a fresh or removed bucket.
        unsafe {
            (*b).link.next = at;
            (*b).link.prev = (*at).link.prev;
            (*(*at).link.prev).link.next = b;
            (*at).link.prev = b;
        }
    }

    fn push_raw(&mut self, b: *mut ffi::apr_bucket) {
        Self::insert_before(self.sentinel(), b);
    }

    /// Appends a copy of `data` (a heap bucket). Empty data appends nothing.
    pub fn push_copy(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: a NULL free function makes APR copy the bytes.
        let b = unsafe {
            ffi::apr_bucket_heap_create(
                data.as_ptr() as *const c_char,
                data.len() as _,
                None,
                self.alloc(),
            )
        };
        self.push_raw(b);
    }

    /// Appends a transient bucket over `data`: no copy, but the brigade must be passed on (or
    /// the bucket set aside) before `data` changes.
    pub fn push_transient(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: transient buckets copy on setaside; the caller keeps `data` alive while passing.
        let b = unsafe {
            ffi::apr_bucket_transient_create(
                data.as_ptr() as *const c_char,
                data.len() as _,
                self.alloc(),
            )
        };
        self.push_raw(b);
    }

    /// Appends a FLUSH bucket.
    pub fn push_flush(&mut self) {
        // SAFETY: valid allocator.
        let b = unsafe { ffi::apr_bucket_flush_create(self.alloc()) };
        self.push_raw(b);
    }

    /// Appends an EOS bucket.
    pub fn push_eos(&mut self) {
        // SAFETY: valid allocator.
        let b = unsafe { ffi::apr_bucket_eos_create(self.alloc()) };
        self.push_raw(b);
    }

    /// Appends an error bucket carrying an HTTP status (httpd's way to report a broken
    /// response to the filters below; with a body under way the connection is cut).
    pub fn push_error(&mut self, status: super::Status, pool: &super::Pool<'_>) {
        // SAFETY: valid allocator and pool; a NULL message is allowed.
        let b = unsafe {
            ffi::ap_bucket_error_create(status, std::ptr::null(), pool.as_ptr(), self.alloc())
        };
        self.push_raw(b);
    }

    /// Appends an EOC (end of connection) bucket.
    pub fn push_eoc(&mut self) {
        // SAFETY: valid allocator.
        let b = unsafe { ffi::ap_bucket_eoc_create(self.alloc()) };
        self.push_raw(b);
    }

    /// Moves `b` (removed from wherever it was) to the end of this brigade.
    pub fn push_bucket(&mut self, b: Bucket) {
        b.unlink();
        self.push_raw(b.raw);
    }

    /// Moves all buckets of `other` to the end of this brigade.
    pub fn append(&mut self, other: &mut Brigade) {
        while let Some(b) = other.first() {
            self.push_bucket(b);
        }
    }

    /// Destroys every bucket.
    pub fn clear(&mut self) {
        // SAFETY: live brigade.
        unsafe { ffi::apr_brigade_cleanup(self.raw as *mut c_void) };
    }

    /// The total length of the data buckets (reads buckets of unknown length if `read_all`).
    pub fn len(&self, read_all: bool) -> Result<u64, ffi::apr_status_t> {
        let mut n: ffi::apr_off_t = 0;
        // SAFETY: live brigade.
        let rv = unsafe { ffi::apr_brigade_length(self.raw, read_all as i32, &mut n) };
        if rv == rv::SUCCESS {
            Ok(n.max(0) as u64)
        } else {
            Err(rv)
        }
    }

    /// Splits the brigade so that it holds at most the first `n` bytes; the rest is moved to
    /// the front of `rest`. Returns the bytes kept.
    pub fn split_at(&mut self, n: u64, rest: &mut Brigade) -> Result<(), ffi::apr_status_t> {
        let mut after: *mut ffi::apr_bucket = std::ptr::null_mut();
        // SAFETY: live brigade; apr_brigade_partition splits a bucket if needed and returns the
        // first bucket after the point (or the sentinel).
        let rv = unsafe { ffi::apr_brigade_partition(self.raw, n as ffi::apr_off_t, &mut after) };
        if rv != rv::SUCCESS && rv != rv::INCOMPLETE {
            return Err(rv);
        }
        let mut moved = Vec::new();
        let mut cur = after;
        while cur != self.sentinel() {
            moved.push(Bucket { raw: cur });
            // SAFETY: cur is in this ring.
            cur = unsafe { (*cur).link.next };
        }
        // Insert at the front of `rest`, keeping order.
        let head = rest
            .first()
            .map(|b| b.raw)
            .unwrap_or_else(|| rest.sentinel());
        for b in moved {
            b.unlink();
            Self::insert_before(head, b.raw);
        }
        Ok(())
    }

    /// Moves the first `n` bytes of this brigade (all of it if it holds less) to the end of
    /// `into`, splitting a bucket at the point if needed. Metadata buckets before the point
    /// move too.
    pub fn take_front(&mut self, n: u64, into: &mut Brigade) -> Result<(), ffi::apr_status_t> {
        let mut after: *mut ffi::apr_bucket = std::ptr::null_mut();
        // SAFETY: live brigade; apr_brigade_partition splits a bucket if needed and returns the
        // first bucket after the point (or the sentinel).
        let rv = unsafe { ffi::apr_brigade_partition(self.raw, n as ffi::apr_off_t, &mut after) };
        if rv != rv::SUCCESS && rv != rv::INCOMPLETE {
            return Err(rv);
        }
        while let Some(b) = self.first() {
            if b.raw == after {
                break;
            }
            into.push_bucket(b);
        }
        Ok(())
    }

    /// Appends to `into` copies of the buckets that hold the first `n` bytes of this brigade
    /// (splitting a bucket at the point if needed); this brigade keeps its data. Heap buckets
    /// are shared, not copied.
    pub fn copy_front(&mut self, n: u64, into: &mut Brigade) -> Result<(), ffi::apr_status_t> {
        let mut after: *mut ffi::apr_bucket = std::ptr::null_mut();
        // SAFETY: as take_front.
        let rv = unsafe { ffi::apr_brigade_partition(self.raw, n as ffi::apr_off_t, &mut after) };
        if rv != rv::SUCCESS && rv != rv::INCOMPLETE {
            return Err(rv);
        }
        let mut cur = self.first();
        while let Some(b) = cur {
            if b.raw == after {
                break;
            }
            let mut copy: *mut ffi::apr_bucket = std::ptr::null_mut();
            // SAFETY: apr_bucket_copy is `e->type->copy(e, &c)`; the copy is a new bucket in
            // no ring, which push_raw links into `into`.
            let rv = unsafe { ((*(*b.raw).type_).copy.expect("bucket copy"))(b.raw, &mut copy) };
            if rv != rv::SUCCESS {
                return Err(rv);
            }
            into.push_raw(copy);
            cur = self.next(b);
        }
        Ok(())
    }

    /// Passes the brigade to an output filter.
    ///
    /// # Safety
    /// `next` must be a live filter of this brigade's connection.
    pub(super) unsafe fn pass_to(&mut self, next: *mut ffi::ap_filter_t) -> ffi::apr_status_t {
        // SAFETY: per contract.
        unsafe { ffi::ap_pass_brigade(next, self.raw) }
    }
}

impl Bucket {
    /// What the bucket carries.
    pub fn kind(&self) -> Kind {
        // SAFETY: a live bucket's type pointer is valid; the type structs are exported statics.
        unsafe {
            let t = (*self.raw).type_;
            if (*t).is_metadata == 0 {
                Kind::Data
            } else if std::ptr::eq(t, &raw const ffi::apr_bucket_type_eos) {
                Kind::Eos
            } else if std::ptr::eq(t, &raw const ffi::apr_bucket_type_flush) {
                Kind::Flush
            } else if std::ptr::eq(t, &raw const ffi::ap_bucket_type_eoc) {
                Kind::Eoc
            } else {
                Kind::OtherMeta
            }
        }
    }

    /// Whether this is a file bucket (read without mapping the whole file).
    pub fn is_file(&self) -> bool {
        // SAFETY: as kind.
        unsafe { std::ptr::eq((*self.raw).type_, &raw const ffi::apr_bucket_type_file) }
    }

    /// The length, or `None` if unknown until read (pipes, sockets).
    pub fn known_len(&self) -> Option<usize> {
        // SAFETY: live bucket.
        let l = unsafe { (*self.raw).length };
        (l != ffi::apr_size_t::MAX).then_some(l)
    }

    /// Reads the bucket's data. Reading morphs buckets of unknown length in place (and inserts
    /// the remainder after it). The slice is valid until the bucket is changed or destroyed.
    pub fn read(&self, block: bool) -> Result<&[u8], ffi::apr_status_t> {
        let mut p: *const c_char = std::ptr::null();
        let mut len: ffi::apr_size_t = 0;
        let mode = if block {
            ffi::apr_read_type_e_APR_BLOCK_READ
        } else {
            ffi::apr_read_type_e_APR_NONBLOCK_READ
        };
        // SAFETY: apr_bucket_read is `e->type->read(e, &str, &len, block)`.
        let rv = unsafe {
            ((*(*self.raw).type_).read.expect("bucket read"))(self.raw, &mut p, &mut len, mode)
        };
        if rv != rv::SUCCESS {
            return Err(rv);
        }
        if len == 0 || p.is_null() {
            return Ok(&[]);
        }
        // SAFETY: APR returns `len` readable bytes owned by the bucket.
        Ok(unsafe { std::slice::from_raw_parts(p as *const u8, len as usize) })
    }

    /// Splits the bucket after `n` bytes; the second part is the next bucket.
    pub fn split(&self, n: usize) -> Result<(), ffi::apr_status_t> {
        // SAFETY: apr_bucket_split is `e->type->split(e, point)`.
        let rv = unsafe { ((*(*self.raw).type_).split.expect("bucket split"))(self.raw, n as _) };
        if rv == rv::SUCCESS { Ok(()) } else { Err(rv) }
    }

    /// Makes the bucket's data live as long as `pool` (copies transient data).
    pub fn setaside(&self, pool: &super::Pool<'_>) -> Result<(), ffi::apr_status_t> {
        // SAFETY: apr_bucket_setaside is `e->type->setaside(e, pool)`.
        let rv = unsafe {
            ((*(*self.raw).type_).setaside.expect("bucket setaside"))(self.raw, pool.as_ptr())
        };
        if rv == rv::SUCCESS || rv == rv::ENOTIMPL {
            Ok(())
        } else {
            Err(rv)
        }
    }

    fn unlink(&self) {
        // SAFETY: APR_BUCKET_REMOVE: the bucket is in a live ring.
        unsafe {
            let b = self.raw;
            (*(*b).link.prev).link.next = (*b).link.next;
            (*(*b).link.next).link.prev = (*b).link.prev;
        }
    }

    /// Removes the bucket from its brigade and destroys it (`apr_bucket_delete`).
    pub fn delete(self) {
        self.unlink();
        // SAFETY: apr_bucket_destroy: the type's destroy on its data, then its free function.
        unsafe {
            let b = self.raw;
            if let Some(d) = (*(*b).type_).destroy {
                d((*b).data);
            }
            if let Some(free) = (*b).free {
                free(b as *mut c_void);
            }
        }
    }
}
