def sigmoid_vjp(z, y_bar):
    y = 1.0 / (1.0 + np.exp(-z))
    z_bar = y_bar * (y * (1.0 - y))
    return y, z_bar
