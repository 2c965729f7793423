"""The real-media corpus: sounds, speech, instruments, pictures and picture+sound clips from a fixed
list of Debian packages (and the labelled real recordings, --shared-media), captioned, split, and written as a manifest.
See docs/CORPUS.md; `vlsa data corpus OUT` builds it."""
