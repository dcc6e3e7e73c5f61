def kinks_vjp(x, y, out_bar):
    v = np.maximum(x, y)
    v_1 = x - y
    v_2 = abs(v_1)
    v_3 = x * x
    out = v * v_2 + np.minimum(v_3, 1.0)
    x_bar = (out_bar if v_3 <= 1.0 else 0.0) * x
    v_4 = out_bar * v_2
    v_5 = out_bar * v * np.sign(v_1)
    v_6 = x >= y
    x_bar = x_bar + x_bar + v_5 + (v_4 if v_6 else 0.0)
    y_bar = (0.0 if v_6 else v_4) - v_5
    return out, x_bar, y_bar
