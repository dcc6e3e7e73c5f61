def softplus_loss_vjp(w, b, x, y, out_bar):
    z = w * x + b
    v = np.exp(z)
    out = np.log1p(v) - y * z
    z_bar = out_bar * (v / (1.0 + v) - y)
    w_bar = z_bar * x
    return out, w_bar, z_bar
