# matplotlib: a figure with text (fonts, FreeType) saved as PNG in /tmp, read back for its magic.
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
ax.plot([0, 1, 2, 3], [1, 4, 2, 3], label="series")
ax.set_title("compatibility")
ax.set_xlabel("x")
ax.text(1, 3, "text in the plot")
ax.legend()
path = os.path.join(tempfile.gettempdir(), "plot.png")
fig.savefig(path)
with open(path, "rb") as f:
    head = f.read(8)
print("png_magic=%s" % (head == b"\x89PNG\r\n\x1a\n"))
print("png_nonempty=%s" % (os.path.getsize(path) > 1000))
print("backend=" + matplotlib.get_backend())
