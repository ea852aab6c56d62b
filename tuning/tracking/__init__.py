"""Stage 4, following the trials as they run: MLflow (the tracker with its parent and trial runs, the run
layout, the logged model's schema) and the progress display on the terminal."""
