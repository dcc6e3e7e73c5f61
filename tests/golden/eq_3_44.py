def eq_3_44_vjp(x, y_bar):
    a = np.exp(x)
    c = a + a * a
    d = np.exp(c)
    y = d + np.sin(c)
    x_bar = y_bar * a * (2.0 * a + 1.0) * (np.cos(c) + d)
    return y, x_bar
