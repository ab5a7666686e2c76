#!/bin/sh
# From the project root: make the data, train 200 epochs, draw the decision regions (models/spiral/spiral.png).
set -e
python models/spiral/make_spiral.py
caffelite train --solver models/spiral/spiral_solver.prototxt
python models/spiral/plot_spiral.py --weights models/spiral/spiral_iter_3000.caffemodel --out models/spiral/spiral.png
