"""sxad's one-thread matrix-product kernel, emitted as LLVM IR (the runtime library's
``sxad.rt.gemmk.<t>`` runs it, split over the pool: ``codegen.blas``).

Goto's loop nest: for each NC block of columns, each KC block of k: pack op(B) into NR-wide
panels; for each MC block of rows: pack op(A) into MR-high panels and run the micro-kernel over
the tiles. The micro-kernel holds an MR×NR tile of C in vector registers (8×32 f32 with
AVX-512) and accumulates with FMAs; packed panels are zero-padded, so edge tiles compute a
whole tile and store the part inside C. Panels are packed with vector loads and, when the
source is laid out across them, transposed in registers (``_transpose``). A C narrow enough
is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ (``GemmEmitter.turned``). A C at most one vector wide (or
high) skips all that (``emit_skinny``): only op(B) is packed, each row of C accumulates in a
register from broadcasts of op(A) read where it lies (the MNIST step's 10-class products,
256×10×512 and 512×10×256 on two threads: 21.7 → 14.6 µs and 20.5 → 13.3 µs).
Measurements: ``codegen/blas.py``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import llvmlite.binding as llvm
from llvmlite import ir

from sxad.ir import F32, F64, Type

INT1 = ir.IntType(1)
INT32 = ir.IntType(32)
INT64 = ir.IntType(64)
PTR = ir.PointerType()
LL_FLOAT: dict[Type, ir.Type] = {F64: ir.DoubleType(), F32: ir.FloatType()}


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(
        module, ir.FunctionType(ret, args), name)


# --------------------------------------------------------------------------- IR helpers

def _i(value: int) -> ir.Constant:
    return ir.Constant(INT64, value)


def _round_up(b: ir.IRBuilder, x: ir.Value, to: int) -> ir.Value:
    return b.mul(b.sdiv(b.add(x, _i(to - 1)), _i(to)), _i(to))


def _i32(value: int) -> ir.Constant:
    return ir.Constant(INT32, value)


NULL = ir.Constant(PTR, None)


@contextmanager
def _loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int = 1,
          name: str = "i") -> Iterator[ir.Value]:
    """for (i = start; i < stop; i += step): a guarded, bottom-tested loop (the shape LLVM's
    vectorizer expects); yields i."""
    fn = b.function
    before = b.block
    body = fn.append_basic_block(f"{name}.body")
    after = fn.append_basic_block(f"{name}.end")
    b.cbranch(b.icmp_signed("<", start, stop), body, after)
    b.position_at_end(body)
    index = b.phi(INT64, name=name)
    index.add_incoming(start, before)
    yield index
    following = b.add(index, _i(step), name=f"{name}.next")
    index.add_incoming(following, b.block)
    b.cbranch(b.icmp_signed("<", following, stop), body, after)
    b.position_at_end(after)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _new_function(module: ir.Module, name: str, ret: ir.Type, args: list[tuple[str, ir.Type]],
                  ) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(module, ir.FunctionType(ret, [t for _, t in args]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    for arg, (arg_name, _) in zip(fn.args, args):
        arg.name = arg_name
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _element(b: ir.IRBuilder, fty: ir.Type, base: ir.Value, index: ir.Value) -> ir.Value:
    return b.gep(base, [index], source_etype=fty)


def _matrix_index(b: ir.IRBuilder, trans: ir.Value, row: ir.Value, col: ir.Value,
                  ld: ir.Value) -> ir.Value:
    """The offset of op(M)[row, col] in a row-major M with leading dimension ld."""
    return b.select(trans, b.add(b.mul(col, ld), row), b.add(b.mul(row, ld), col))


def _scaled_store(b: ir.IRBuilder, fty: ir.Type, pointer: ir.Value, value: ir.Value,
                  beta: ir.Value, beta_zero: ir.Value) -> None:
    """*pointer = value + beta·*pointer, without reading it into the sum when beta is 0 (a nan
    in an uninitialised output must not leak in)."""
    old = b.load(pointer, typ=fty)
    b.store(b.select(beta_zero, value, b.call(_fma(b.module, fty), [beta, old, value])), pointer)


def _carry_loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int,
                initial: list[ir.Value],
                body: Callable[[ir.Value, list[ir.Value]], list[ir.Value]]) -> list[ir.Value]:
    """for (i = start; i < stop; i += step) values = body(i, values), the values carried in
    registers; gives the last values (``initial`` when the loop does not run)."""
    fn, before = b.function, b.block
    loop, done = fn.append_basic_block("carry.body"), fn.append_basic_block("carry.end")
    b.cbranch(b.icmp_signed("<", start, stop), loop, done)
    b.position_at_end(loop)
    index = b.phi(INT64)
    carried = [b.phi(value.type) for value in initial]
    following = body(index, carried)
    index_next, last = b.add(index, _i(step)), b.block
    for phi, first, then in zip([index, *carried], [start, *initial], [index_next, *following]):
        phi.add_incoming(first, before)
        phi.add_incoming(then, last)
    b.cbranch(b.icmp_signed("<", index_next, stop), loop, done)
    b.position_at_end(done)
    return [_phi(b, (first, before), (then, last)) for first, then in zip(initial, following)]


def _phi(b: ir.IRBuilder, *incoming: tuple[ir.Value, ir.Block]) -> ir.Value:
    """The value that came with the block control came from."""
    phi = b.phi(incoming[0][0].type)
    for value, block in incoming:
        phi.add_incoming(value, block)
    return phi


def _store_block(b: ir.IRBuilder, fty: ir.Type, block: ir.Value, width: int, c: ir.Value,
                 rs: ir.Value, cs: ir.Value, rows: ir.Value, cols: ir.Value,
                 beta: ir.Value) -> None:
    """C[i, j] = block[i·width + j] + beta·C[i, j] for i < rows, j < cols, element by element
    (C at c + i·rs + j·cs)."""
    beta_zero = b.fcmp_ordered("==", beta, ir.Constant(fty, 0.0))
    with _loop(b, _i(0), rows, name="i") as i:
        with _loop(b, _i(0), cols, name="j") as j:
            value = b.load(_element(b, fty, block, b.add(b.mul(i, _i(width)), j)), typ=fty)
            pointer = _element(b, fty, c, b.add(b.mul(i, rs), b.mul(j, cs)))
            _scaled_store(b, fty, pointer, value, beta, beta_zero)


def _sum_loop(b: ir.IRBuilder, fty: ir.Type, count: ir.Value,
              term: Callable[[ir.Value, ir.Value], ir.Value]) -> ir.Value:
    """Σ over p < ``count`` as one loop carrying the sum in a register: ``term(p, total)``
    gives the next total (0 when ``count`` ≤ 0)."""
    return _carry_loop(b, _i(0), count, 1, [ir.Constant(fty, 0.0)],
                       lambda p, totals: [term(p, totals[0])])[0]


def _fma(module: ir.Module, ty: ir.Type) -> ir.Function:
    if isinstance(ty, ir.VectorType):
        suffix = f"v{ty.count}{'f64' if isinstance(ty.element, ir.DoubleType) else 'f32'}"
    else:
        suffix = "f64" if isinstance(ty, ir.DoubleType) else "f32"
    return _declare(module, f"llvm.fma.{suffix}", ty, [ty] * 3)


def _transpose(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """G vectors of C elements (G ≤ C, powers of two) holding a G×C matrix → G vectors whose
    concatenation is its transpose (C×G, row-major). Each round interleaves vector i with
    vector i + G/2 (a riffle of the whole array, which rotates the bits of an element's index
    by one): log2 G rounds turn index r·C + c into c·G + r."""
    count = rows[0].type.count
    low = [x for i in range(count // 2) for x in (i, count + i)]
    high = [x + count // 2 for x in low]
    mask_type = ir.VectorType(INT32, count)
    half = len(rows) // 2
    for _ in range(len(rows).bit_length() - 1):
        rows = [b.shuffle_vector(rows[i], rows[i + half], ir.Constant(mask_type, mask))
                for i in range(half) for mask in (low, high)]
    return rows


# --------------------------------------------------------------------------- the gemm kernel

def vector_bits() -> int:
    """The widest vector registers of the host, which the micro-kernel's tile is made of."""
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 512
    return 256 if features.get("avx") else 128


def tile(dtype: Type) -> tuple[int, int, int]:
    """(MR, NR, W): the micro-kernel's C tile is MR rows × NR columns, NR = 2 vectors of W.
    MR·NR/W accumulators + 2 B vectors + 1 broadcast fit the 16 (32 with AVX-512) registers."""
    width = vector_bits() // (64 if dtype == F64 else 32)
    rows = 8 if vector_bits() == 512 else 6
    return rows, 2 * width, width


KC, MC, NC = 256, 96, 4096      # the k, m, n block sizes of the packed panels (L1/L2/L3)


def gemm_function(module: ir.Module, dtype: Type) -> ir.Function:
    """The one-thread kernel ``void sxad.gemm.<t>(i1 ta, i1 tb, i64 m, n, k, T alpha, ptr a,
    i64 lda, ptr b, i64 ldb, T beta, ptr c, i64 ldc)``, emitted into ``module`` once."""
    return emitter(module, dtype).fn


def emitter(module: ir.Module, dtype: Type) -> "GemmEmitter":
    """The kernel's functions in ``module`` (emitted on first use)."""
    emitters = module.__dict__.setdefault("sxad_gemm", {})
    if dtype not in emitters:
        emitters[dtype] = GemmEmitter(module, dtype, f"sxad.gemm.{dtype}")
    return emitters[dtype]


class GemmEmitter:
    """Goto's loop nest: for each NC block of columns, each KC block of k: pack op(B) into
    NR-wide panels; for each MC block of rows: pack op(A) into MR-high panels and run the
    micro-kernel over the tiles. Packed panels are zero-padded, so edge tiles compute a whole
    tile and store the part inside C."""

    def __init__(self, module: ir.Module, dtype: Type, name: str) -> None:
        self.module, self.dtype = module, dtype
        self.fty = LL_FLOAT[dtype]
        self.size = 8 if dtype == F64 else 4
        self.mr, self.nr, self.w = tile(dtype)
        self.vty = ir.VectorType(self.fty, self.w)
        self.mc = MC // self.mr * self.mr
        self.nc = NC // self.nr * self.nr
        self.micro = self.emit_micro(f"{name}.micro")
        self.pack_a = self.emit_pack(f"{name}.pack_a", self.mr)
        self.pack_b = self.emit_pack(f"{name}.pack_b", self.nr)
        self.naive = self.emit_naive(f"{name}.naive")
        self.skinny = self.emit_skinny(f"{name}.skinny")
        self.driver = self.emit_driver(f"{name}.strided")
        self.fn = self.emit_oriented(name)

    # -- the micro-kernel: C[0:rows, 0:cols] = alpha·Ap·Bp + beta·C (an MR×NR buffer for
    #    edge tiles is passed in: no alloca)

    def emit_micro(self, name: str) -> ir.Function:
        fty, vty, mr, nr, w = self.fty, self.vty, self.mr, self.nr, self.w
        fn, b = _new_function(self.module, name, ir.VoidType(), [
            ("kb", INT64), ("ap", PTR), ("bp", PTR), ("c", PTR), ("rs", INT64), ("cs", INT64),
            ("alpha", fty), ("beta", fty), ("rows", INT64), ("cols", INT64), ("buffer", PTR)])
        kb, ap, bp, c, rs, cs, alpha, beta, rows, cols, buffer = fn.args
        for pointer in (ap, bp, c, buffer):
            pointer.add_attribute("noalias")
        fma = _fma(self.module, vty)
        zero = ir.Constant(vty, None)
        vectors = nr // w
        self.prefetch_tile(b, c, rs, cs, kb)
        entry = b.block
        body = fn.append_basic_block("k.body")
        done = fn.append_basic_block("k.end")
        b.cbranch(b.icmp_signed(">", kb, _i(0)), body, done)
        b.position_at_end(body)
        p = b.phi(INT64, name="p")
        acc = [[b.phi(vty, name=f"acc{i}.{v}") for v in range(vectors)] for i in range(mr)]
        b_row = _element(b, fty, bp, b.mul(p, _i(nr)))
        b_vectors = [b.load(_element(b, fty, b_row, _i(v * w)), typ=vty, align=self.size)
                     for v in range(vectors)]
        a_col = _element(b, fty, ap, b.mul(p, _i(mr)))
        new_acc = []
        for i in range(mr):
            a_value = b.load(_element(b, fty, a_col, _i(i)), typ=fty)
            splat = self.splat(b, a_value)
            new_acc.append([b.call(fma, [splat, b_vectors[v], acc[i][v]])
                            for v in range(vectors)])
        p_next = b.add(p, _i(1))
        p.add_incoming(_i(0), entry)
        p.add_incoming(p_next, b.block)
        for i in range(mr):
            for v in range(vectors):
                acc[i][v].add_incoming(zero, entry)
                acc[i][v].add_incoming(new_acc[i][v], b.block)
        b.cbranch(b.icmp_signed("<", p_next, kb), body, done)
        b.position_at_end(done)
        final = [[b.phi(vty) for _ in range(vectors)] for _ in range(mr)]
        for i in range(mr):
            for v in range(vectors):
                final[i][v].add_incoming(zero, entry)
                final[i][v].add_incoming(new_acc[i][v], body)
        self.store_tile(fn, b, final, buffer, c, rs, cs, alpha, beta, rows, cols)
        return fn

    def prefetch_tile(self, b: ir.IRBuilder, c: ir.Value, rs: ir.Value, cs: ir.Value,
                      kb: ir.Value) -> None:
        """Ask for the C tile's cache lines (for writing) before a long k loop: they are read
        or written only after it (1024³: 4% faster; a 10-long loop slower)."""
        prefetch = _declare(self.module, "llvm.prefetch.p0", ir.VoidType(),
                            [PTR, INT32, INT32, INT32])
        line = 64 // self.size
        with b.if_then(b.and_(b.icmp_signed("==", cs, _i(1)), b.icmp_signed(">=", kb, _i(64)))):
            for i in range(self.mr):
                row = _element(b, self.fty, c, b.mul(_i(i), rs))
                for at in range(0, self.nr, line):
                    b.call(prefetch, [_element(b, self.fty, row, _i(at)), _i32(1), _i32(3),
                                      _i32(1)])

    def splat(self, b: ir.IRBuilder, value: ir.Value) -> ir.Value:
        vector = b.insert_element(ir.Constant(self.vty, ir.Undefined), value, ir.Constant(INT32, 0))
        mask = ir.Constant(ir.VectorType(INT32, self.w), [0] * self.w)
        return b.shuffle_vector(vector, ir.Constant(self.vty, ir.Undefined), mask)

    def store_tile(self, fn: ir.Function, b: ir.IRBuilder, acc: list[list[ir.Value]],
                   buffer: ir.Value, c: ir.Value, rs: ir.Value, cs: ir.Value, alpha: ir.Value,
                   beta: ir.Value, rows: ir.Value, cols: ir.Value) -> None:
        """A whole tile of a C with unit column stride straight into C with vector stores;
        an edge tile, or any tile of a transposed C, through a buffer."""
        fty, mr, nr, w = self.fty, self.mr, self.nr, self.w
        beta_zero = b.fcmp_ordered("==", beta, ir.Constant(fty, 0.0))
        alpha_v = self.splat(b, alpha)
        beta_v = self.splat(b, beta)
        whole = b.and_(b.and_(b.icmp_signed("==", rows, _i(mr)), b.icmp_signed("==", cols, _i(nr))),
                       b.icmp_signed("==", cs, _i(1)))
        with b.if_else(whole) as (then, otherwise):
            with then:      # C is not read when beta is 0 (the first k block's tiles)
                with b.if_else(beta_zero) as (overwrite, accumulate):
                    for branch, reads in ((overwrite, False), (accumulate, True)):
                        with branch:
                            self.store_whole(b, acc, c, rs, alpha_v, beta_v if reads else None)
            with otherwise:
                for i in range(mr):
                    for v in range(len(acc[i])):
                        pointer = _element(b, fty, buffer, _i(i * nr + v * w))
                        b.store(b.fmul(alpha_v, acc[i][v]), pointer, align=self.size)
                _store_block(b, fty, buffer, nr, c, rs, cs, rows, cols, beta)
        b.ret_void()

    def store_whole(self, b: ir.IRBuilder, acc: list[list[ir.Value]], c: ir.Value,
                    rs: ir.Value, alpha_v: ir.Value, beta_v: ir.Value | None) -> None:
        """C[i, :] = alpha·acc[i] (+ beta·C[i, :] unless ``beta_v`` is None), vector stores."""
        fty, vty, w = self.fty, self.vty, self.w
        for i in range(self.mr):
            row = _element(b, fty, c, b.mul(_i(i), rs))
            for v in range(len(acc[i])):
                pointer = _element(b, fty, row, _i(v * w))
                value = b.fmul(alpha_v, acc[i][v])
                if beta_v is not None:
                    old = b.load(pointer, typ=vty, align=self.size)
                    value = b.call(_fma(self.module, vty), [beta_v, old, value])
                b.store(value, pointer, align=self.size)

    # -- packing: dst[panel][p][e] = op(M)[start + panel·width + e, p0 + p], 0 beyond `count`

    def emit_pack(self, name: str, width: int) -> ir.Function:
        """Packs `count` rows (of op(A), or columns of op(B), called with the roles swapped:
        op(B)[p, j] = Bᵀ[j, p]) × kb into panels `width` high. Whole panels are copied with
        vector loads: a row p of a panel is `width` consecutive elements of M when ``trans``,
        else `width` rows of M are read a vector at a time and transposed in registers. The
        last, partial panel repeats its last row (zeroed), element by element."""
        fn, b = _new_function(self.module, name, ir.VoidType(), [
            ("dst", PTR), ("src", PTR), ("ld", INT64), ("trans", INT1), ("start", INT64),
            ("count", INT64), ("p0", INT64), ("kb", INT64)])
        dst, src, ld, trans, start, count, p0, kb = fn.args
        for pointer in (dst, src):
            pointer.add_attribute("noalias")
        whole = b.mul(b.sdiv(count, _i(width)), _i(width))
        with b.if_else(trans) as (along, across):
            with along:
                self.pack_along(b, width, dst, src, ld, start, whole, p0, kb)
            with across:
                self.pack_across(b, width, dst, src, ld, start, whole, p0, kb)
        self.pack_edge(b, width, dst, src, ld, trans, start, whole, count, p0, kb)
        b.ret_void()
        return fn

    def pack_along(self, b: ir.IRBuilder, width: int, dst: ir.Value, src: ir.Value,
                   ld: ir.Value, start: ir.Value, whole: ir.Value, p0: ir.Value,
                   kb: ir.Value) -> None:
        """Whole panels of M[r, c] = src[c·ld + r]: row p of a panel is one vector load. Panels
        narrower than a vector go in groups filling one (a whole cache line of M per load:
        one panel at a time, a power-of-two ld made each line come from L2 twice, 2× slower)."""
        fty, vty = self.fty, ir.VectorType(self.fty, width)
        first = _element(b, fty, src, b.add(b.mul(p0, ld), start))
        group = self.w // width if width < self.w and self.w % width == 0 else 1
        grouped = self.pack_grouped(b, width, group, dst, first, ld, whole, kb) \
            if group > 1 else _i(0)
        with _loop(b, grouped, whole, step=width, name="along") as panel:
            out = _element(b, fty, dst, b.mul(panel, kb))
            column = _element(b, fty, first, panel)
            with _loop(b, _i(0), kb, name="pa") as p:
                value = b.load(_element(b, fty, column, b.mul(p, ld)), typ=vty, align=self.size)
                b.store(value, _element(b, fty, out, b.mul(p, _i(width))), align=self.size)

    def pack_grouped(self, b: ir.IRBuilder, width: int, group: int, dst: ir.Value,
                     first: ir.Value, ld: ir.Value, whole: ir.Value, kb: ir.Value) -> ir.Value:
        """``pack_along``'s panels ``group`` at a time: one vector load of a row of M, split
        between them. Returns the first panel left (past the last whole group)."""
        fty, span = self.fty, width * group
        grouped = b.mul(b.sdiv(whole, _i(span)), _i(span))
        halves = [ir.Constant(ir.VectorType(INT32, width), list(range(g * width, (g + 1) * width)))
                  for g in range(group)]
        with _loop(b, _i(0), grouped, step=span, name="along2") as panel:
            outs = [_element(b, fty, dst, b.mul(b.add(panel, _i(g * width)), kb))
                    for g in range(group)]
            column = _element(b, fty, first, panel)
            with _loop(b, _i(0), kb, name="pg") as p:
                value = b.load(_element(b, fty, column, b.mul(p, ld)), typ=self.vty,
                               align=self.size)
                at = b.mul(p, _i(width))
                for out, half in zip(outs, halves):
                    part = b.shuffle_vector(value, ir.Constant(self.vty, ir.Undefined), half)
                    b.store(part, _element(b, fty, out, at), align=self.size)
        return grouped

    def pack_across(self, b: ir.IRBuilder, width: int, dst: ir.Value, src: ir.Value,
                    ld: ir.Value, start: ir.Value, whole: ir.Value, p0: ir.Value,
                    kb: ir.Value) -> None:
        """Whole panels of M[r, c] = src[r·ld + c]: groups of G rows (G the largest power of
        two dividing `width`, at most a vector) × one vector of C columns are loaded and
        transposed with shuffles (``_transpose``): each result vector holds C/G consecutive
        p of the group, stored G elements a time. Columns past the last whole vector are
        copied element by element."""
        fty, w = self.fty, self.w
        group = min(width & -width, w)
        per = w // group                    # p per transposed vector
        vectors = b.mul(b.sdiv(kb, _i(w)), _i(w))
        with _loop(b, _i(0), whole, step=width, name="across") as panel:
            out = _element(b, fty, dst, b.mul(panel, kb))
            rows = [_element(b, fty, src, b.add(b.mul(b.add(start, b.add(panel, _i(e))), ld), p0))
                    for e in range(width)]
            with _loop(b, _i(0), vectors, step=w, name="pv") as pv:
                for g in range(0, width, group):
                    loaded = [b.load(_element(b, fty, rows[g + e], pv), typ=self.vty,
                                     align=self.size) for e in range(group)]
                    for q, value in enumerate(_transpose(b, loaded)):
                        if group == width:      # the p of a vector are consecutive rows
                            at = b.add(b.mul(pv, _i(width)), _i(q * w))
                            b.store(value, _element(b, fty, out, at), align=self.size)
                            continue
                        for t in range(per):
                            part = value if per == 1 else b.shuffle_vector(
                                value, ir.Constant(self.vty, ir.Undefined),
                                ir.Constant(ir.VectorType(INT32, group),
                                            list(range(t * group, (t + 1) * group))))
                            p = b.add(pv, _i(q * per + t))
                            at = b.add(b.mul(p, _i(width)), _i(g))
                            b.store(part, _element(b, fty, out, at), align=self.size)
            with _loop(b, vectors, kb, name="pt") as p:
                for e in range(width):
                    value = b.load(_element(b, fty, rows[e], p), typ=fty)
                    b.store(value, _element(b, fty, out, b.add(b.mul(p, _i(width)), _i(e))))

    def pack_edge(self, b: ir.IRBuilder, width: int, dst: ir.Value, src: ir.Value,
                  ld: ir.Value, trans: ir.Value, start: ir.Value, whole: ir.Value,
                  count: ir.Value, p0: ir.Value, kb: ir.Value) -> None:
        """The partial last panel (rows whole … count), zero-padded to `width`."""
        fty = self.fty
        last = b.sub(count, _i(1))
        zero = ir.Constant(fty, 0.0)
        with _loop(b, whole, count, step=width, name="panel") as panel:
            out = _element(b, fty, dst, b.mul(panel, kb))
            with _loop(b, _i(0), kb, name="p") as p:
                column = b.add(p0, p)
                for e in range(width):
                    index = b.add(panel, _i(e))
                    inside = b.icmp_signed("<=", index, last)
                    clamped = b.add(start, b.select(inside, index, last))
                    offset = _matrix_index(b, trans, clamped, column, ld)
                    value = b.load(_element(b, fty, src, offset), typ=fty)
                    target = _element(b, fty, out, b.add(b.mul(p, _i(width)), _i(e)))
                    b.store(b.select(inside, value, zero), target)

    # -- a C at most one vector wide: no panels of the large operand

    def emit_skinny(self, name: str) -> ir.Function:
        """C := alpha·op(A)·op(B) + beta·C for n ≤ W (one vector): op(B) is copied into a k×W
        buffer (zero-padded), then each block of ``skinny_rows`` rows of C accumulates in as
        many vector registers, one broadcast of op(A) per row and k, read where it lies: a
        k×10 op(B) against a large op(A) packs only op(B) (packing op(A) for 10 columns cost
        more than the products)."""
        fty, w = self.fty, self.w
        fn, b = _new_function(self.module, name, ir.VoidType(), self.strided_arguments())
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, rs, cs = fn.args
        plain = list(fn.args)
        rows_per = self.skinny_rows
        with b.if_then(b.or_(b.icmp_signed("<=", m, _i(0)), b.icmp_signed("<=", n, _i(0)))):
            b.ret_void()
        malloc = _declare(self.module, "malloc", PTR, [INT64])
        free = _declare(self.module, "free", ir.VoidType(), [PTR])
        # op(B) (k vectors), then one block of C's rows (the accumulators, stored)
        packed = b.call(malloc, [b.mul(b.add(_max(b, k, _i(0)), _i(rows_per)),
                                       _i(w * self.size))])
        with b.if_then(b.or_(b.icmp_signed("<=", k, _i(0)),
                             b.icmp_unsigned("==", packed, NULL))):
            b.call(free, [packed])
            b.call(self.naive, plain)
            b.ret_void()
        self.pack_narrow(b, packed, bm, ldb, tb, n, k)
        tile = _element(b, fty, packed, b.mul(k, _i(w)))
        with b.if_else(ta) as (across, along):
            # op(A)'s rows adjacent in memory: one pointer, constant offsets, 2·MR rows a block;
            # else a pointer per row: MR of them (more would spill)
            for branch, shape, row_stride, step in ((across, (2 * self.mr, 1), _i(1), lda),
                                                    (along, (self.mr, 2), lda, _i(1))):
                with branch:
                    self.skinny_blocks(b, shape, a, row_stride, step, m, packed, k, tile,
                                       (c, rs, cs, n, alpha, beta))
        b.call(free, [packed])
        b.ret_void()
        return fn

    @property
    def skinny_rows(self) -> int:
        """The most rows of C in one block of the skinny kernel (its accumulators)."""
        return 2 * self.mr

    def skinny_blocks(self, b: ir.IRBuilder, shape: tuple[int, int], a: ir.Value,
                      row_stride: ir.Value,
                      step: ir.Value, m: ir.Value, packed: ir.Value, k: ir.Value,
                      tile: ir.Value, out: tuple[ir.Value, ...]) -> None:
        """C's rows in blocks of ``rows_per``; the last block, when C has that many rows,
        ends at row m (overlapping the one before, whose rows it does not store again), so
        that no block reads past op(A); a C with fewer rows reads its last row again.
        ``shape``: (rows a block, sets of accumulators: ``skinny_block``)."""
        fty, w = self.fty, self.w
        rows_per, sets = shape
        c, rs, cs, n, alpha, beta = out
        alpha_v = self.splat(b, alpha)
        whole = b.icmp_signed(">=", m, _i(rows_per))
        with _loop(b, _i(0), m, step=rows_per, name="block") as first:
            with b.if_else(whole) as (inside, short):
                with inside:
                    start = _min(b, first, b.sub(m, _i(rows_per)))
                    acc = self.skinny_block(b, a, row_stride, step, start, None, packed, k,
                                            rows_per, sets)
                    inside_end = b.block
                with short:
                    short_acc = self.skinny_block(b, a, row_stride, step, first, m, packed,
                                                  k, rows_per, sets)
                    short_end = b.block
            merged = [_phi(b, (value, inside_end), (other, short_end))
                      for value, other in zip(acc, short_acc)]
            origin = _phi(b, (start, inside_end), (first, short_end))
            for r, vector in enumerate(merged):
                b.store(b.fmul(alpha_v, vector), _element(b, fty, tile, _i(r * w)),
                        align=self.size)
            skip = b.sub(first, origin)          # rows the block before stored already
            rows = _min(b, b.sub(m, first), _i(rows_per))
            _store_block(b, fty, _element(b, fty, tile, b.mul(skip, _i(w))), w,
                         _element(b, fty, c, b.mul(first, rs)), rs, cs, rows, n, beta)

    def pack_narrow(self, b: ir.IRBuilder, packed: ir.Value, bm: ir.Value, ldb: ir.Value,
                    tb: ir.Value, n: ir.Value, k: ir.Value) -> None:
        """packed[p·W + j] = op(B)[p, j] for j < n, 0 for n ≤ j < W: a masked vector load per
        p when op(B)'s rows lie in memory, else zeros then op(B)'s columns element by
        element (each a row of B)."""
        fty, vty, w = self.fty, self.vty, self.w
        zero = ir.Constant(vty, None)
        lanes = ir.Constant(ir.VectorType(INT64, w), list(range(w)))
        count = b.insert_element(ir.Constant(ir.VectorType(INT64, w), ir.Undefined), n, _i32(0))
        count = b.shuffle_vector(count, ir.Constant(ir.VectorType(INT64, w), ir.Undefined),
                                 ir.Constant(ir.VectorType(INT32, w), [0] * w))
        mask = b.icmp_signed("<", lanes, count)
        suffix = f"v{w}{'f64' if self.size == 8 else 'f32'}"
        load = _declare(self.module, f"llvm.masked.load.{suffix}.p0", vty,
                        [PTR, INT32, mask.type, vty])
        with b.if_else(tb) as (columns, rows):
            with rows:
                with _loop(b, _i(0), k, name="p") as p:
                    row = b.call(load, [_element(b, fty, bm, b.mul(p, ldb)), _i32(self.size),
                                        mask, zero])
                    b.store(row, _element(b, fty, packed, b.mul(p, _i(w))), align=self.size)
            with columns:
                self.pack_columns(b, packed, bm, ldb, n, k)

    def pack_columns(self, b: ir.IRBuilder, packed: ir.Value, bm: ir.Value, ldb: ir.Value,
                     n: ir.Value, k: ir.Value) -> None:
        """``pack_narrow`` from the n rows of B (op(B) = Bᵀ): W of them × W consecutive p,
        loaded a vector each (rows past n: zeros) and transposed in registers; the last
        k mod W element by element."""
        fty, vty, w = self.fty, self.vty, self.w
        zero = ir.Constant(vty, None)
        last = b.sub(n, _i(1))
        inside = [b.icmp_signed("<=", _i(j), last) for j in range(w)]
        sources = [_element(b, fty, bm, b.mul(_min(b, _i(j), last), ldb)) for j in range(w)]
        vectors = b.mul(b.sdiv(k, _i(w)), _i(w))
        with _loop(b, _i(0), vectors, step=w, name="pv") as p:
            rows = [b.select(flag, b.load(_element(b, fty, source, p), typ=vty, align=self.size),
                             zero) for flag, source in zip(inside, sources)]
            for q, column in enumerate(_transpose(b, rows)):
                b.store(column, _element(b, fty, packed, b.mul(b.add(p, _i(q)), _i(w))),
                        align=self.size)
        with _loop(b, vectors, k, name="pt") as p:
            vector = zero
            for j, (flag, source) in enumerate(zip(inside, sources)):
                value = b.load(_element(b, fty, source, p), typ=fty)
                vector = b.insert_element(vector, b.select(flag, value, ir.Constant(fty, 0.0)),
                                          _i32(j))
            b.store(vector, _element(b, fty, packed, b.mul(p, _i(w))), align=self.size)

    def skinny_block(self, b: ir.IRBuilder, a: ir.Value, row_stride: ir.Value, step: ir.Value,
                     first: ir.Value, m: ir.Value | None, packed: ir.Value, k: ir.Value,
                     rows_per: int, sets: int) -> list[ir.Value]:
        """The accumulators of rows first … first + rows_per of op(A)·packed; op(A)[i, p] at
        a[i·row_stride + p·step]; with ``m``, rows past m read as row m - 1 (their sums are
        dropped), else all are read (constant offsets when row_stride is). ``sets`` of
        accumulators (1 or 2) take turns over p."""
        fty, vty, w = self.fty, self.vty, self.w
        fma = _fma(self.module, vty)
        block = _element(b, fty, a, b.mul(first, row_stride))
        if m is None:
            rows = [_element(b, fty, block, b.mul(_i(r), row_stride)) for r in range(rows_per)]
        else:
            last = b.sub(b.sub(m, first), _i(1))
            rows = [_element(b, fty, block, b.mul(_min(b, _i(r), last), row_stride))
                    for r in range(rows_per)]
        zero = ir.Constant(vty, None)

        def step_into(p: ir.Value, totals: list[ir.Value]) -> list[ir.Value]:
            column = b.load(_element(b, fty, packed, b.mul(p, _i(w))), typ=vty,
                            align=self.size)
            at = b.mul(p, step)
            return [b.call(fma, [self.splat(b, b.load(_element(b, fty, row, at), typ=fty)),
                                 column, total]) for row, total in zip(rows, totals)]

        if sets == 1:
            return _carry_loop(b, _i(0), k, 1, [zero] * rows_per, step_into)
        # two sets of accumulators, even and odd p: twice the FMA chains in flight
        pairs = b.and_(k, _i(-2))
        both = _carry_loop(b, _i(0), pairs, 2, [zero] * (2 * rows_per), lambda p, totals: (
            step_into(p, totals[:rows_per]) + step_into(b.add(p, _i(1)), totals[rows_per:])))
        even = _carry_loop(b, pairs, k, 1, both[:rows_per], step_into)
        return [b.fadd(x, y) for x, y in zip(even, both[rows_per:])]

    # -- without memory for the panels: the plain triple loop

    def emit_naive(self, name: str) -> ir.Function:
        fty = self.fty
        fn, b = _new_function(self.module, name, ir.VoidType(), self.strided_arguments())
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, rs, cs = fn.args
        beta_zero = b.fcmp_ordered("==", beta, ir.Constant(fty, 0.0))
        fma = _fma(self.module, fty)
        with _loop(b, _i(0), m, name="i") as i:
            with _loop(b, _i(0), n, name="j") as j:
                def term(p: ir.Value, total: ir.Value) -> ir.Value:
                    x = b.load(_element(b, fty, a, _matrix_index(b, ta, i, p, lda)), typ=fty)
                    y = b.load(_element(b, fty, bm, _matrix_index(b, tb, p, j, ldb)), typ=fty)
                    return b.call(fma, [x, y, total])
                total = _sum_loop(b, fty, k, term)
                pointer = _element(b, fty, c, b.add(b.mul(i, rs), b.mul(j, cs)))
                _scaled_store(b, fty, pointer, b.fmul(alpha, total), beta, beta_zero)
        b.ret_void()
        return fn

    # -- the driver

    def arguments(self) -> list[tuple[str, ir.Type]]:
        fty = self.fty
        return [("ta", INT1), ("tb", INT1), ("m", INT64), ("n", INT64), ("k", INT64),
                ("alpha", fty), ("a", PTR), ("lda", INT64), ("b", PTR), ("ldb", INT64),
                ("beta", fty), ("c", PTR), ("ldc", INT64)]

    def strided_arguments(self) -> list[tuple[str, ir.Type]]:
        """``arguments`` with C[i, j] at c + i·rs + j·cs (a transposed C: rs = 1)."""
        return self.arguments()[:-1] + [("rs", INT64), ("cs", INT64)]

    def emit_oriented(self, name: str) -> ir.Function:
        """The kernel: C := alpha·op(A)·op(B) + beta·C, or, when C's shape pads fewer
        elements into whole MR×NR tiles that way, Cᵀ := alpha·op(B)ᵀ·op(A)ᵀ + beta·Cᵀ (a
        256×10 C computes 256×32 tiles, its transpose 16×256: half the work)."""
        fn, b = _new_function(self.module, name, ir.VoidType(), self.arguments())
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc = fn.args
        with b.if_else(self.turned(b, m, n)) as (then, otherwise):
            with then:
                b.call(self.driver, [b.not_(tb), b.not_(ta), n, m, k, alpha, bm, ldb, a, lda,
                                     beta, c, _i(1), ldc, NULL, NULL])
            with otherwise:
                b.call(self.driver, [ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc,
                                     _i(1), NULL, NULL])
        b.ret_void()
        return fn

    def turned(self, b: ir.IRBuilder, m: ir.Value, n: ir.Value) -> ir.Value:
        """Whether to compute Cᵀ: when that makes C at most a vector wide (``narrow``: the
        skinny kernel) or, neither being narrow, pads a fifth fewer elements into whole tiles
        (its tiles are then stored element by element)."""
        upright = b.mul(_round_up(b, m, self.mr), _round_up(b, n, self.nr))
        turned = b.mul(_round_up(b, n, self.mr), _round_up(b, m, self.nr))
        padding = b.icmp_signed("<", b.mul(turned, _i(5)), b.mul(upright, _i(4)))
        return b.select(self.narrow(b, n), b.icmp_signed("<", m, n),
                        b.select(self.narrow(b, m), ir.Constant(INT1, 1), padding))

    def narrow(self, b: ir.IRBuilder, n: ir.Value) -> ir.Value:
        """Whether a C n columns wide is the skinny kernel's (at most one vector)."""
        return b.icmp_signed("<=", n, _i(self.w))

    def emit_driver(self, name: str) -> ir.Function:
        """Goto's loops; ``packed_a`` / ``packed_b``, when not null, hold all of op(A) / op(B)
        packed already (``pack_all``: the threads of a split product share them)."""
        fty, mr, nr = self.fty, self.mr, self.nr
        fn, b = _new_function(self.module, name, ir.VoidType(), self.strided_arguments() + [
            ("packed_a", PTR), ("packed_b", PTR)])
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, rs, cs, packed_a, packed_b = fn.args
        plain = list(fn.args)[:-2]
        malloc = _declare(self.module, "malloc", PTR, [INT64])
        free = _declare(self.module, "free", ir.VoidType(), [PTR])
        empty = b.or_(b.icmp_signed("<=", m, _i(0)), b.icmp_signed("<=", n, _i(0)))
        with b.if_then(empty):
            b.ret_void()
        with b.if_then(b.icmp_signed("<=", k, _i(0))):     # C := beta·C
            b.call(self.naive, plain)
            b.ret_void()
        nothing_packed = b.and_(b.icmp_unsigned("==", packed_a, NULL),
                                b.icmp_unsigned("==", packed_b, NULL))
        with b.if_then(b.and_(self.narrow(b, n), nothing_packed)):
            b.call(self.skinny, plain)
            b.ret_void()
        kc = _min(b, k, _i(KC))
        a_count = b.mul(_round_up(b, _min(b, m, _i(self.mc)), mr), kc)
        # the packed A panels, then room for one tile (the micro-kernel's edge buffer)
        a_bytes = b.mul(b.add(a_count, _i(mr * nr)), _i(self.size))
        b_bytes = b.mul(b.mul(_round_up(b, _min(b, n, _i(self.nc)), nr), kc), _i(self.size))
        a_pack = b.call(malloc, [a_bytes])
        b_pack = b.call(malloc, [b_bytes])
        missing = b.or_(b.icmp_unsigned("==", a_pack, ir.Constant(PTR, None)),
                        b.icmp_unsigned("==", b_pack, ir.Constant(PTR, None)))
        with b.if_then(missing):
            b.call(free, [a_pack])
            b.call(free, [b_pack])
            b.call(self.naive, plain)
            b.ret_void()
        edge = _element(b, fty, a_pack, a_count)
        not_tb = b.not_(tb)
        null = ir.Constant(PTR, None)
        own_a, own_b = (b.icmp_unsigned("==", x, null) for x in (packed_a, packed_b))
        m_all, n_all = _round_up(b, m, mr), _round_up(b, n, nr)
        with _loop(b, _i(0), n, step=self.nc, name="jc") as jc:
            nb = _min(b, b.sub(n, jc), _i(self.nc))
            with _loop(b, _i(0), k, step=KC, name="pc") as pc:
                kb = _min(b, b.sub(k, pc), _i(KC))
                # op(B)[p, j] read as the rows j of op(B)ᵀ: transposed unless tb
                with b.if_then(own_b):
                    b.call(self.pack_b, [b_pack, bm, ldb, not_tb, jc, nb, pc, kb])
                b_block = b.select(own_b, b_pack, _element(
                    b, fty, packed_b, b.add(b.mul(pc, n_all), b.mul(jc, kb))))
                beta_now = b.select(b.icmp_signed("==", pc, _i(0)), beta, ir.Constant(fty, 1.0))
                with _loop(b, _i(0), m, step=self.mc, name="ic") as ic:
                    mb = _min(b, b.sub(m, ic), _i(self.mc))
                    with b.if_then(own_a):
                        b.call(self.pack_a, [a_pack, a, lda, ta, ic, mb, pc, kb])
                    a_block = b.select(own_a, a_pack, _element(
                        b, fty, packed_a, b.add(b.mul(pc, m_all), b.mul(ic, kb))))
                    with _loop(b, _i(0), nb, step=nr, name="jr") as jr:
                        cols = _min(b, b.sub(nb, jr), _i(nr))
                        b_panel = _element(b, fty, b_block, b.mul(jr, kb))
                        with _loop(b, _i(0), mb, step=mr, name="ir") as ir_:
                            rows = _min(b, b.sub(mb, ir_), _i(mr))
                            a_panel = _element(b, fty, a_block, b.mul(ir_, kb))
                            row, col = b.add(ic, ir_), b.add(jc, jr)
                            tile_c = _element(b, fty, c, b.add(b.mul(row, rs), b.mul(col, cs)))
                            b.call(self.micro, [kb, a_panel, b_panel, tile_c, rs, cs, alpha,
                                                beta_now, rows, cols, edge])
        b.call(free, [a_pack])
        b.call(free, [b_pack])
        b.ret_void()
        return fn
