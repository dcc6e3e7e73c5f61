def newton_sqrt_vjp(a, x_bar):
    _tape = []
    x = a
    k = 0
    while abs(x * x - a) > 1e-12 * a:
        v = a / x
        x_1 = 0.5 * (x + v)
        _tape.append(x)
        _tape.append(v)
        x = x_1
        k = k + 1
    a_bar = 0.0
    for _ in reversed(range(k)):
        v_1 = _tape.pop()
        x_2 = _tape.pop()
        v_2 = x_bar * 0.5
        v_3 = v_2 / x_2
        x_bar = v_2 - v_3 * v_1
        a_bar = a_bar + v_3
    a_bar = a_bar + x_bar
    return x, a_bar
