"""app.heatmaps: pure image functions, checked on arrays whose answer is known."""

import numpy as np
import pytest

from app import heatmaps


def test_heatmaps_unit_range_scales_min_to_max_and_flat_to_half():
    assert heatmaps.unit_range(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert heatmaps.unit_range(np.full((2, 2), 7.0)).tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_heatmaps_colorize_runs_from_dark_to_bright():
    colours = heatmaps.colorize(np.linspace(0, 1, 5))
    assert colours.shape == (5, 3) and colours.dtype == np.uint8
    brightness = colours.astype(int).sum(1)
    assert (np.diff(brightness) > 0).all()
    assert colours[0].tolist() == heatmaps.HEAT_STOPS[0].tolist()


def test_heatmaps_spatial_strip_marks_the_hot_patch_and_leaves_cold_ones_alone():
    frames = np.full((2, 64, 64, 3), 100, np.uint8)
    heat = np.zeros((2, 8, 8), np.float32)
    heat[1, 0, 7] = 1.0  # top-right patch of the second frame
    strip = heatmaps.spatial_strip(frames, heat, tile=80)
    assert strip.shape == (80, 2 * 80 + heatmaps.GAP, 3)
    second = strip[:, 80 + heatmaps.GAP:]
    assert (strip[:, :80] == 100).all()  # the coldest value leaves the picture as it was
    assert np.abs(second[2, 77].astype(int) - 100).sum() > 100  # the hot corner is coloured
    assert (second[78, 2] == 100).all()  # the opposite corner is not


def test_heatmaps_spatial_strip_needs_a_map_per_frame():
    with pytest.raises(ValueError, match="3 frames but 2"):
        heatmaps.spatial_strip(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((2, 2, 2)))


def test_heatmaps_temporal_strip_colours_each_window_by_its_score():
    spans = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    strip = heatmaps.temporal_strip(spans, [0.1, 0.9, 0.5], duration=6.0, selected=1, width=600, height=56)
    assert strip.shape == (56, 600, 3)
    row = strip[20].astype(int)
    first, middle, last = row[50].sum(), row[300].sum(), row[550].sum()
    assert middle > last > first  # brighter is more similar
    assert strip[20, 201].tolist() == list(heatmaps.SELECTED)  # the selected window is outlined


def test_heatmaps_spectrogram_puts_low_frequencies_at_the_bottom():
    spec = np.zeros((16, 32), np.float32)
    spec[0] = 1.0  # the lowest frequency row is loud
    image = heatmaps.spectrogram_rgb(spec)
    assert image.shape == (16, 32, 3)
    assert image[-1].astype(int).sum() > image[0].astype(int).sum()


def test_heatmaps_spectrogram_heatmap_flips_heat_like_the_spectrogram():
    spec = np.zeros((64, 64), np.float32)
    heat = np.zeros((8, 8), np.float32)
    heat[0, :] = 1.0  # lowest frequency patches are hot
    image = heatmaps.spectrogram_heatmap(spec, heat, height=80, width=160)
    assert image.shape == (80, 160, 3)
    assert image[75].astype(int).sum() > image[5].astype(int).sum()


def test_heatmaps_thumbnails_are_square():
    assert heatmaps.video_thumbnail(np.zeros((90, 160, 3), np.uint8), size=48).shape == (48, 48, 3)
    assert heatmaps.audio_thumbnail(np.random.default_rng(0).random((64, 64)), size=48).shape == (48, 48, 3)
