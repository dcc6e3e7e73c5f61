def power_sum_vjp(x, n, s_bar):
    _tape = []
    s = 0.0
    p = 1.0
    for i in range(n):
        p_1 = p * x
        s = s + p_1 / np.float64(i + 1)
        _tape.append(p)
        p = p_1
    p_bar = 0.0
    x_bar = 0.0
    for i in reversed(range(n)):
        p_2 = _tape.pop()
        p_bar = p_bar + s_bar / np.float64(i + 1)
        x_bar = x_bar + p_bar * p_2
        p_bar = p_bar * x
    return s, x_bar
