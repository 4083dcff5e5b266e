"""Input and output file formats: one reader (and writer) per format, one ID rule."""
