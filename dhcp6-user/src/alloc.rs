//! The daemon's allocator: small blocks from mimalloc, large ones from the system's.
//!
//! The engine allocates a few small blocks per message that other threads free (a reply is
//! encoded on the engine's thread and freed by the sender's once it is sent): glibc takes the
//! engine's arena lock for each of those frees, and the two threads contend for it. mimalloc
//! frees a block of another thread's without a lock. Large blocks (the lease table's vectors
//! and indexes, hundreds of megabytes with millions of leases) stay with glibc, which grows
//! them in place by remapping their pages: mimalloc copies them instead, and stalled the
//! engine for 100-240 ms each time one of them doubled.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of this size or more come from the system allocator.
pub const LARGE: usize = 1 << 20;

/// See the module documentation.
pub struct SplitAlloc;

impl SplitAlloc {
    /// Has glibc map every large block on its own (at [`LARGE`] and above, fixed), so that
    /// growing one remaps its pages rather than copying them. Left to itself glibc raises
    /// that threshold (up to 32 MiB) each time a mapped block is freed, and blocks under it
    /// come from its heap, where growing one copies it. Call once, early.
    pub fn map_large_blocks() {
        // SAFETY: mallopt only sets a tunable of the allocator.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
        }
    }
}

fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: each block is freed (or resized) by the allocator that made it: which one follows
// from the layout's size, which the caller passes unchanged (GlobalAlloc's contract), and a
// block that crosses the line on a resize is moved to the other allocator.
unsafe impl GlobalAlloc for SplitAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's.
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller's; the block came from the allocator its size names.
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller's; a block that changes sides is copied into a new one of the
        // other allocator (its alignment kept, the new size valid for it as the caller
        // guarantees), then the old one freed by its own.
        unsafe {
            match (large(layout.size()), large(new_size)) {
                (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_bytes_across_the_line_both_ways() {
        let a = SplitAlloc;
        for align in [1, 16, 4096] {
            let small = Layout::from_size_align(1000, align).unwrap();
            // SAFETY: valid layouts; each pointer is used within its block and freed once.
            unsafe {
                let p = a.alloc(small);
                assert!(!p.is_null());
                for i in 0..1000 {
                    *p.add(i) = i as u8;
                }
                let big = a.realloc(p, small, LARGE + 10);
                assert!(!big.is_null());
                assert_eq!(big as usize % align, 0);
                assert!((0..1000).all(|i| *big.add(i) == i as u8));
                let grown = a.realloc(big, Layout::from_size_align(LARGE + 10, align).unwrap(), 4 * LARGE);
                assert!((0..1000).all(|i| *grown.add(i) == i as u8));
                let back = a.realloc(grown, Layout::from_size_align(4 * LARGE, align).unwrap(), 500);
                assert!((0..500).all(|i| *back.add(i) == i as u8));
                a.dealloc(back, Layout::from_size_align(500, align).unwrap());
                let z = a.alloc_zeroed(Layout::from_size_align(LARGE, align).unwrap());
                assert!((0..LARGE).step_by(4096).all(|i| *z.add(i) == 0));
                a.dealloc(z, Layout::from_size_align(LARGE, align).unwrap());
            }
        }
    }
}
