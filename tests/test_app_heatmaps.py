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
    strip = heatmaps.temporal_strip(spans, [0.1, 0.9, 0.5], duration=6.0, selected=1, width=600, height=40)
    assert strip.shape[1] >= 600 and strip.shape[0] > 40  # the bar, its time axis and the legend
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


def embedded_at(figure: np.ndarray, picture: np.ndarray) -> tuple[int, int] | None:
    """(row, column) where `picture` appears unchanged inside `figure`, or None."""
    h, w = picture.shape[:2]
    for y in range(figure.shape[0] - h + 1):
        for x in range(figure.shape[1] - w + 1):
            if (figure[y, x] == picture[0, 0]).all() and (figure[y:y + h, x:x + w] == picture).all():
                return y, x
    return None


def test_heatmaps_time_ticks_are_round_seconds_from_end_to_end():
    ticks = heatmaps.time_ticks(0.0, 2.0, 641)
    assert [label for _, label in ticks] == ["0.0 s", "0.5 s", "1.0 s", "1.5 s", "2.0 s"]
    assert [x for x, _ in ticks] == [0, 160, 320, 480, 640]
    assert [label for _, label in heatmaps.time_ticks(1.3, 2.3, 300, most=4)] == ["1.5 s", "2.0 s"]


def test_heatmaps_frequency_ticks_put_low_frequencies_at_the_bottom():
    ticks = dict((label, y) for y, label in heatmaps.frequency_ticks(np.geomspace(40, 8000, 64), height=160))
    assert ticks["100 Hz"] > ticks["1 kHz"] > ticks["5 kHz"]  # rows grow downwards
    assert "20 Hz" not in ticks and "10 kHz" not in ticks  # only frequencies the map holds


def test_heatmaps_figures_keep_the_picture_clear_and_add_axes_and_legend():
    """Axes and legend are drawn in margins: the heatmap itself is in the figure pixel for pixel.
    Catches text or ticks drawn over the picture, and a figure without its colour legend."""
    rng = np.random.default_rng(0)
    spec, heat = rng.random((64, 40)), rng.random((4, 3))
    picture = heatmaps.spectrogram_heatmap(spec, heat)
    figure = heatmaps.spectrogram_figure(spec, heat, (1.0, 2.0), np.geomspace(40, 8000, 64))
    top, left = embedded_at(figure, picture)
    assert top == 0 and left > 0  # the frequency labels on its left
    below = figure[picture.shape[0]:]
    assert (below == heatmaps.colorize(np.array(1.0))).all(-1).any()  # the legend's brightest colour
    frames, heat = np.full((2, 32, 32, 3), 90, np.uint8), rng.random((2, 2, 2))
    strip = heatmaps.spatial_strip(frames, heat, tile=64)
    assert embedded_at(heatmaps.spatial_figure(frames, heat, [0.5, 1.5], tile=64), strip) == (0, 0)
