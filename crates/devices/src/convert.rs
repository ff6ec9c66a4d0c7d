//! Camera pixel formats to I420 (the RGB ones go through
//! [`VideoFrame::fill_from_packed_rgb`]).

use ringwire_media::video::{VideoFrame, VideoIoError};

/// Packed YUV 4:2:2 (`Y0 U Y1 V`), the format every UVC webcam offers uncompressed.
/// Chroma of two rows is averaged into one.
pub(crate) fn yuyv_to_i420(
    frame: &mut VideoFrame,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<(), VideoIoError> {
    let (w, h) = (width as usize, height as usize);
    let stride = w.div_ceil(2) * 4;
    if bytes.len() < stride * h {
        return Err(VideoIoError::InvalidConfig(
            "too few bytes for a YUYV picture",
        ));
    }
    frame.resize(width, height)?;
    let cw = frame.chroma_width() as usize;
    let (py, pu, pv) = frame.planes_mut();
    for row in 0..h {
        let src = &bytes[row * stride..(row + 1) * stride];
        for col in 0..w {
            py[row * w + col] = src[(col / 2) * 4 + (col % 2) * 2];
        }
    }
    for crow in 0..h.div_ceil(2) {
        let top = &bytes[2 * crow * stride..][..stride];
        let bottom = &bytes[(2 * crow + 1).min(h - 1) * stride..][..stride];
        for ccol in 0..cw {
            let avg = |a: u8, b: u8| ((u16::from(a) + u16::from(b)).div_ceil(2)) as u8;
            pu[crow * cw + ccol] = avg(top[ccol * 4 + 1], bottom[ccol * 4 + 1]);
            pv[crow * cw + ccol] = avg(top[ccol * 4 + 3], bottom[ccol * 4 + 3]);
        }
    }
    Ok(())
}

/// Semi-planar 4:2:0 (a Y plane, then interleaved U V), common on laptop cameras.
pub(crate) fn nv12_to_i420(
    frame: &mut VideoFrame,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<(), VideoIoError> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if bytes.len() < w * h + 2 * cw * ch {
        return Err(VideoIoError::InvalidConfig(
            "too few bytes for an NV12 picture",
        ));
    }
    frame.resize(width, height)?;
    let (py, pu, pv) = frame.planes_mut();
    py.copy_from_slice(&bytes[..w * h]);
    for (i, uv) in bytes[w * h..w * h + 2 * cw * ch]
        .chunks_exact(2)
        .enumerate()
    {
        pu[i] = uv[0];
        pv[i] = uv[1];
    }
    Ok(())
}

/// 8-bit greyscale (full range) as limited-range luma with neutral chroma.
pub(crate) fn gray_to_i420(
    frame: &mut VideoFrame,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<(), VideoIoError> {
    let len = width as usize * height as usize;
    if bytes.len() < len {
        return Err(VideoIoError::InvalidConfig(
            "too few bytes for a grey picture",
        ));
    }
    frame.resize(width, height)?;
    let (py, pu, pv) = frame.planes_mut();
    for (out, &g) in py.iter_mut().zip(&bytes[..len]) {
        *out = (16 + (u32::from(g) * 219 + 127) / 255) as u8;
    }
    pu.fill(128);
    pv.fill(128);
    Ok(())
}

#[cfg(test)]
mod tests {
    use ringwire_media::video::Yuv;

    use super::*;

    #[test]
    fn yuyv_nv12_and_gray_convert() {
        let mut frame = VideoFrame::black(2, 2).unwrap();
        // 2x2 YUYV: Y 10 20 / 30 40, U 100/110, V 200/210.
        let yuyv = [10, 100, 20, 200, 30, 110, 40, 210];
        yuyv_to_i420(&mut frame, 2, 2, &yuyv).unwrap();
        assert_eq!(frame.y(), &[10, 20, 30, 40]);
        assert_eq!((frame.u(), frame.v()), (&[105][..], &[205][..]));
        // Odd width: 3 pixels need two YUYV macropixels per row.
        let odd = [1, 50, 2, 60, 3, 70, 0, 80];
        yuyv_to_i420(&mut frame, 3, 1, &odd).unwrap();
        assert_eq!(frame.y(), &[1, 2, 3]);
        assert_eq!(frame.u(), &[50, 70]);
        assert!(yuyv_to_i420(&mut frame, 4, 4, &yuyv).is_err());

        let nv12 = [1, 2, 3, 4, 5, 6];
        nv12_to_i420(&mut frame, 2, 2, &nv12).unwrap();
        assert_eq!(frame.pixel(1, 1), Some(Yuv { y: 4, u: 5, v: 6 }));
        assert!(nv12_to_i420(&mut frame, 2, 2, &nv12[..5]).is_err());

        gray_to_i420(&mut frame, 2, 1, &[0, 255]).unwrap();
        assert_eq!(frame.y(), &[16, 235]);
        assert!(gray_to_i420(&mut frame, 2, 2, &[0]).is_err());
    }
}
