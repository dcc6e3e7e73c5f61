def early_exit_vjp(x, n, ret_bar):
    _tape = []
    i = 0
    returned = False
    ret = 0.0
    k = 0
    while not returned and i < n:
        x = x * 1.5
        returned = x > 10.0
        if returned:
            ret = x - 10.0
        i = i + 1
        _tape.append(returned)
        k = k + 1
    if not returned:
        ret = x
    if returned:
        x_bar = 0.0
    else:
        x_bar = ret_bar
        ret_bar = 0.0
    for _ in reversed(range(k)):
        v = _tape.pop()
        if v:
            x_bar = x_bar + ret_bar
            ret_bar = 0.0
        x_bar = x_bar * 1.5
    return ret, x_bar
