//! How an ncnn `Mat` lays out channels and positions, and mutable access to it.
//!
//! L2Norm normalises, at every spatial *position*, the vector of values across
//! *channels*. Which `Mat` axis is the channel axis follows pnnx's mapping of a
//! PyTorch `(1, C, ...)` tensor with the batch dimension dropped:
//!
//! | dims | PyTorch shape      | channels      | positions  |
//! |------|--------------------|---------------|------------|
//! | 1    | `(1, C)`           | `w`           | 1          |
//! | 2    | `(1, C, L)`        | `h`           | `w`        |
//! | 3    | `(1, C, H, W)`     | `c`           | `w*h`      |
//! | 4    | `(1, C, D, H, W)`  | `c`           | `w*h*d`    |
//!
//! In every case the tensor is `groups` channel groups of `lanes` (= elempack)
//! channels each; group `g` starts `g * group_stride` elements into the buffer,
//! and position `p`, lane `l` of it is element `p * lanes + l` of that row.
//! Channel `g * lanes + l` is the one ncnn packs into that lane.

use std::marker::PhantomData;
use std::ops::Range;

use crate::error::L2NormError;
use crate::kernel::element::{Element, Storage};

/// An ncnn `Mat`'s shape fields, as the C++ layer reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatView {
    pub dims: i32,
    pub w: i32,
    pub h: i32,
    pub d: i32,
    pub c: i32,
    /// Channels packed into one element (1, 4, 8 or 16 in ncnn).
    pub elempack: i32,
    /// Bytes per element, all lanes together (fp32: `4 * elempack`).
    pub elemsize: usize,
    /// Distance between channel groups, in elements (dims 3 and 4).
    pub cstep: usize,
}

impl MatView {
    /// A dims-3 fp32 `Mat` of `c` channel groups, with ncnn's own `cstep`
    /// (each channel rounded up to 16 bytes).
    pub fn dims3(w: i32, h: i32, c: i32, elempack: i32) -> Self {
        let elemsize = 4 * elempack.max(1) as usize;
        let cstep = aligned_cstep((w as usize).saturating_mul(h as usize), elemsize);
        MatView {
            dims: 3,
            w,
            h,
            d: 1,
            c,
            elempack,
            elemsize,
            cstep,
        }
    }

    /// A dims-4 fp32 `Mat`, `cstep` as ncnn computes it.
    pub fn dims4(w: i32, h: i32, d: i32, c: i32, elempack: i32) -> Self {
        let elemsize = 4 * elempack.max(1) as usize;
        let cstep = aligned_cstep(
            (w as usize)
                .saturating_mul(h as usize)
                .saturating_mul(d as usize),
            elemsize,
        );
        MatView {
            dims: 4,
            w,
            h,
            d,
            c,
            elempack,
            elemsize,
            cstep,
        }
    }

    /// A dims-2 fp32 `Mat` (`h` channel groups of `w` positions).
    pub fn dims2(w: i32, h: i32, elempack: i32) -> Self {
        let elemsize = 4 * elempack.max(1) as usize;
        MatView {
            dims: 2,
            w,
            h,
            d: 1,
            c: 1,
            elempack,
            elemsize,
            cstep: (w as usize).saturating_mul(h as usize),
        }
    }

    /// A dims-1 fp32 `Mat` (one position, `w` channel groups).
    pub fn dims1(w: i32, elempack: i32) -> Self {
        let elemsize = 4 * elempack.max(1) as usize;
        MatView {
            dims: 1,
            w,
            h: 1,
            d: 1,
            c: 1,
            elempack,
            elemsize,
            cstep: w as usize,
        }
    }

    /// The same view with another channel stride (a sub-`Mat` or a custom allocator's padding).
    pub fn with_cstep(self, cstep: usize) -> Self {
        MatView { cstep, ..self }
    }

    /// Elements (of `elempack` floats) the buffer must hold: `cstep * c` for dims 3 and 4.
    pub fn buffer_elements(&self) -> usize {
        match self.dims {
            3 | 4 => self.cstep.saturating_mul(self.c.max(0) as usize),
            _ => (self.w.max(0) as usize).saturating_mul(self.h.max(0) as usize),
        }
    }

    /// The same view with 2-byte elements (fp16 or bf16 storage).
    pub fn with_16bit_storage(self) -> Self {
        MatView {
            elemsize: 2 * self.elempack.max(1) as usize,
            ..self
        }
    }

    /// Channels, positions and strides, in elements of `storage`; checks the
    /// shape is one L2Norm handles and that `elemsize` fits the storage.
    pub fn layout(&self, storage: Storage) -> Result<ChannelLayout, L2NormError> {
        if self.dims == 0 {
            return Err(L2NormError::EmptyInput);
        }
        if !(1..=4).contains(&self.dims) {
            return Err(L2NormError::UnsupportedDims(self.dims));
        }
        let bad = |what: String| Err(L2NormError::BadShape(what));
        if self.w < 0 || self.h < 0 || self.d < 0 || self.c < 0 {
            return bad(format!(
                "negative extent w={} h={} d={} c={}",
                self.w, self.h, self.d, self.c
            ));
        }
        if self.elempack < 1 {
            return bad(format!("elempack {}", self.elempack));
        }
        let lanes = self.elempack as usize;
        if self.elemsize != storage.bytes() * lanes {
            return Err(L2NormError::UnsupportedStorage {
                elemsize: self.elemsize,
                elempack: self.elempack,
                storage,
            });
        }
        let (w, h, d, c) = (
            self.w as usize,
            self.h as usize,
            self.d as usize,
            self.c as usize,
        );
        // Everything below is in elements; refuse shapes whose extent overflows.
        let overflow = || L2NormError::BadShape(format!("{self:?} overflows the address space"));
        let (groups, positions, group_stride) = match self.dims {
            1 => (w, 1, 1),
            2 => (h, w, w),
            // w, h < 2^31: w*h fits; w*h*d may not.
            3 => (c, w * h, self.cstep),
            _ => (c, (w * h).checked_mul(d).ok_or_else(overflow)?, self.cstep),
        };
        if groups == 0 || positions == 0 {
            return Err(L2NormError::EmptyInput);
        }
        if group_stride < positions {
            return bad(format!(
                "cstep {} is smaller than w*h*d = {}",
                self.cstep, positions
            ));
        }
        let group_stride = group_stride.checked_mul(lanes).ok_or_else(overflow)?;
        let row_len = positions.checked_mul(lanes).ok_or_else(overflow)?;
        let min_len = (groups - 1)
            .checked_mul(group_stride)
            .and_then(|x| x.checked_add(row_len))
            .filter(|&x| x <= isize::MAX as usize / 4)
            .ok_or_else(overflow)?;
        Ok(ChannelLayout {
            groups,
            lanes,
            positions,
            group_stride,
            min_len,
        })
    }
}

/// ncnn's `cstep` for a channel of `size` elements: rounded up to 16 bytes.
/// Saturates where that overflows (negative or absurd extents, which
/// `layout` refuses) instead of panicking in debug builds.
fn aligned_cstep(size: usize, elemsize: usize) -> usize {
    size.saturating_mul(elemsize)
        .div_ceil(16)
        .saturating_mul(16)
        / elemsize
}

/// A checked view of where channels and positions live in a buffer (in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLayout {
    pub groups: usize,
    pub lanes: usize,
    pub positions: usize,
    /// Elements from one channel group to the next.
    pub group_stride: usize,
    /// Elements the buffer must hold.
    pub min_len: usize,
}

impl ChannelLayout {
    pub fn channels(&self) -> usize {
        self.groups * self.lanes
    }
}

/// Mutable access to positions `positions` of every channel group of a tensor.
///
/// Rows are handed out one at a time, so no two `&mut` slices alias; the
/// memory of other positions is never touched, which is what lets ncnn's
/// OpenMP threads each own a disjoint position range of one `Mat`.
pub struct TensorMut<'a, E: Element = f32> {
    ptr: *mut E,
    layout: ChannelLayout,
    positions: Range<usize>,
    _data: PhantomData<&'a mut [E]>,
}

impl<'a, E: Element> TensorMut<'a, E> {
    /// All positions of `data`, which must be at least `layout.min_len` long.
    pub fn from_slice(data: &'a mut [E], layout: ChannelLayout) -> Result<Self, L2NormError> {
        if data.len() < layout.min_len {
            return Err(L2NormError::BufferTooSmall {
                needed: layout.min_len,
                got: data.len(),
            });
        }
        Ok(TensorMut {
            ptr: data.as_mut_ptr(),
            layout,
            positions: 0..layout.positions,
            _data: PhantomData,
        })
    }

    /// Positions `positions` of the tensor at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be aligned for `E` and, for every group `g < layout.groups`,
    /// the elements `g * group_stride + p * lanes + l` for `p` in `positions` and
    /// `l < lanes` must be valid for reads and writes for `'a`, with nothing
    /// else reading or writing them meanwhile. `positions` must lie within
    /// `0..layout.positions`.
    pub unsafe fn from_raw_positions(
        ptr: *mut E,
        layout: ChannelLayout,
        positions: Range<usize>,
    ) -> Self {
        debug_assert!(positions.start <= positions.end && positions.end <= layout.positions);
        TensorMut {
            ptr,
            layout,
            positions,
            _data: PhantomData,
        }
    }

    pub fn layout(&self) -> &ChannelLayout {
        &self.layout
    }

    pub fn positions(&self) -> Range<usize> {
        self.positions.clone()
    }

    /// The same tensor restricted to positions `p` (within this view's).
    pub fn sub_positions(&mut self, p: Range<usize>) -> TensorMut<'_, E> {
        assert!(self.positions.start <= p.start && p.start <= p.end && p.end <= self.positions.end);
        TensorMut {
            ptr: self.ptr,
            layout: self.layout,
            positions: p,
            _data: PhantomData,
        }
    }

    /// Every group's row for positions `p` at once, for loops over groups
    /// that would otherwise check each row: group `g`'s row is the `(p.end -
    /// p.start) · lanes` elements from `base + g · stride`, where `(base,
    /// stride)` is the result. Raw pointers, valid for the rows of groups
    /// `g < groups` at positions `p` while this view lives; the caller
    /// keeps to those rows and uses no other access to them meanwhile.
    ///
    /// Panics if `p` lies outside this view (a kernel bug, never input-driven).
    #[inline(always)]
    pub(crate) fn rows(&mut self, p: Range<usize>) -> (*mut E, usize) {
        assert!(
            self.positions.start <= p.start && p.start <= p.end && p.end <= self.positions.end,
            "rows {p:?} outside {:?} of {:?}",
            self.positions,
            self.layout
        );
        // `wrapping_add` keeps this safe code; the constructor's contract
        // makes the result point into the tensor whenever a row is used.
        (
            self.ptr.wrapping_add(p.start * self.layout.lanes),
            self.layout.group_stride,
        )
    }

    /// Group `g`'s values for positions `p`, `lanes` elements per position.
    ///
    /// Panics if `g` or `p` lie outside this view (a kernel bug, never input-driven).
    #[inline(always)]
    pub fn row(&mut self, g: usize, p: Range<usize>) -> &mut [E] {
        assert!(
            g < self.layout.groups
                && self.positions.start <= p.start
                && p.start <= p.end
                && p.end <= self.positions.end,
            "row {g} {p:?} outside {:?} of {:?}",
            self.positions,
            self.layout
        );
        let lanes = self.layout.lanes;
        let offset = g * self.layout.group_stride + p.start * lanes;
        // SAFETY: the constructor's contract (checked length for slices, the
        // caller's promise for raw parts) makes every element of group `g` at
        // positions inside `self.positions` valid and ours alone; the assert
        // above keeps the row inside them, and the `&mut self` borrow keeps
        // rows from overlapping each other.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), (p.end - p.start) * lanes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_map_to_channels_and_positions() {
        let l = MatView::dims3(5, 3, 7, 1).layout(Storage::F32).unwrap();
        assert_eq!(
            (l.groups, l.lanes, l.positions, l.group_stride),
            (7, 1, 15, 16)
        );
        let l = MatView::dims4(2, 3, 4, 2, 16).layout(Storage::F32).unwrap();
        assert_eq!(
            (l.channels(), l.positions, l.group_stride),
            (32, 24, 24 * 16)
        );
        let l = MatView::dims2(9, 6, 4).layout(Storage::F32).unwrap();
        assert_eq!((l.channels(), l.positions, l.group_stride), (24, 9, 36));
        let l = MatView::dims1(10, 8).layout(Storage::F32).unwrap();
        assert_eq!((l.channels(), l.positions, l.group_stride), (80, 1, 8));
    }

    #[test]
    fn ncnn_cstep_rounds_to_16_bytes() {
        assert_eq!(MatView::dims3(3, 3, 2, 1).cstep, 12);
        assert_eq!(MatView::dims3(3, 3, 2, 4).cstep, 9);
        assert_eq!(MatView::dims3(38, 38, 512, 1).cstep, 1444);
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            MatView {
                dims: 0,
                ..MatView::dims3(1, 1, 1, 1)
            }
            .layout(Storage::F32),
            Err(L2NormError::EmptyInput)
        );
        assert_eq!(
            MatView::dims3(0, 4, 4, 1).layout(Storage::F32),
            Err(L2NormError::EmptyInput)
        );
        assert_eq!(
            MatView {
                dims: 5,
                ..MatView::dims3(1, 1, 1, 1)
            }
            .layout(Storage::F32),
            Err(L2NormError::UnsupportedDims(5))
        );
        assert!(matches!(
            MatView::dims3(4, 4, 2, 1)
                .with_cstep(8)
                .layout(Storage::F32),
            Err(L2NormError::BadShape(_))
        ));
        assert!(matches!(
            MatView::dims3(-1, 4, 2, 1).layout(Storage::F32),
            Err(L2NormError::BadShape(_))
        ));
        assert!(matches!(
            MatView {
                elemsize: 2,
                ..MatView::dims3(4, 4, 2, 1)
            }
            .layout(Storage::F32),
            Err(L2NormError::UnsupportedStorage { .. })
        ));
        assert!(matches!(
            MatView::dims3(i32::MAX, i32::MAX, i32::MAX, 16).layout(Storage::F32),
            Err(L2NormError::BadShape(_))
        ));
        // w*h*d itself overflows usize (it wrapped in release, panicked in debug).
        assert!(matches!(
            MatView::dims4(i32::MAX, i32::MAX, i32::MAX, 1, 1).layout(Storage::F32),
            Err(L2NormError::BadShape(_))
        ));
        assert!(matches!(
            MatView::dims4(i32::MAX, i32::MAX, i32::MAX, 1, 1)
                .with_cstep(usize::MAX)
                .layout(Storage::F32),
            Err(L2NormError::BadShape(_))
        ));
    }

    #[test]
    fn short_buffer_is_refused() {
        let l = MatView::dims3(3, 3, 2, 1).layout(Storage::F32).unwrap();
        let mut data = vec![0.0f32; l.min_len - 1];
        assert!(matches!(
            TensorMut::from_slice(&mut data, l),
            Err(L2NormError::BufferTooSmall { .. })
        ));
    }
}
