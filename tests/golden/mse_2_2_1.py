def mse_2_2_1_vjp(w1, w2, v1, v2, a1, y, out_bar):
    h1 = 1.0 / (1.0 + np.exp(-(w1 * a1)))
    h2 = 1.0 / (1.0 + np.exp(-(w2 * a1)))
    v = y - (v1 * h1 + v2 * h2)
    out = 0.5 * (v * v)
    v_1 = out_bar * 0.5 * v
    v_2 = v_1 + v_1
    v2_bar = -(v_2 * h2)
    v1_bar = -(v_2 * h1)
    w2_bar = -(v_2 * v2 * (h2 * (1.0 - h2)) * a1)
    w1_bar = -(v_2 * v1 * (h1 * (1.0 - h1)) * a1)
    return out, w1_bar, w2_bar, v1_bar, v2_bar
