def piecewise_vjp(x, y, r_bar):
    _tape = []
    v = x > y
    if v:
        v_1 = np.exp(-y)
        r = x * v_1
        _tape.append(v_1)
    elif x > 0.0:
        v_2 = np.sqrt(x)
        r = v_2 + y
        _tape.append(v_2)
    else:
        r = -(x * y)
    if v:
        v_3 = _tape.pop()
        x_bar = r_bar * v_3
        y_bar = -(r_bar * x * v_3)
    elif x > 0.0:
        v_4 = _tape.pop()
        y_bar = r_bar
        x_bar = r_bar / (2.0 * v_4)
    else:
        y_bar = -(r_bar * x)
        x_bar = -(r_bar * y)
    return r, x_bar, y_bar
