def nested_loops_vjp(x, n, s_bar):
    _tape = []
    s = x
    for i in range(n):
        for j in range(i):
            v = np.sin(s)
            s_1 = v * x + np.float64(j)
            _tape.append(v)
            _tape.append(s)
            s = s_1
    x_bar = 0.0
    for i in reversed(range(n)):
        for _ in reversed(range(i)):
            s_2 = _tape.pop()
            v_1 = _tape.pop()
            x_bar = x_bar + s_bar * v_1
            s_bar = s_bar * x * np.cos(s_2)
    x_bar = x_bar + s_bar
    return s, x_bar
