# NumPy on OpenBLAS: import, a matrix product, a linear solve, eigenvalues, an FFT.
import numpy as np

rng = np.random.default_rng(7)
a = rng.standard_normal((200, 200))
b = rng.standard_normal((200, 3))
print("numpy_version=" + np.__version__)
print("matmul_trace=%.6f" % np.trace(a @ a.T))
x = np.linalg.solve(a, b)
print("solve_residual_small=%s" % bool(np.allclose(a @ x, b)))
sym = a + a.T
print("eigvalsh_max=%.6f" % np.linalg.eigvalsh(sym).max())
print("det_sign=%d" % np.sign(np.linalg.det(a)))
print("fft_peak=%d" % int(np.argmax(np.abs(np.fft.rfft(np.sin(np.arange(1024) * 2 * np.pi * 5 / 1024))))))
