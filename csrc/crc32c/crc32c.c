// torchscope._crc32c: CRC-32C (Castagnoli), the checksum of TensorFlow's checkpoint files.
//
// extend(crc, data) -> int continues a CRC over a bytes-like object, as TensorFlow's
// crc32c::Extend does (crc 0 starts one). The GIL is released over large buffers, so a
// reader can checksum one chunk while another thread reads the next.
//
// x86-64 with SSE4.2 and AArch64 with the CRC extension use the processor's CRC
// instruction on three independent streams (the instruction's latency is three times
// its throughput), joined by shifting each stream's CRC over the bytes after it; other
// processors use slicing-by-8 tables. Shifting a CRC by n zero bytes multiplies it by
// x^(8n) modulo the polynomial; for the fixed stream lengths that is a linear map on
// the 32 bits, applied as four table lookups.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <nmmintrin.h>
#define TS_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <arm_acle.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>
#define TS_ARM 1
#endif

#define POLY 0x82f63b78u  // reflected Castagnoli polynomial

static uint32_t table8[8][256];  // slicing-by-8 tables

// Stream lengths of the three-way loops, and the shift tables for each.
#define LONG 8192
#define SHORT 256
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

static int hardware;  // 1: the processor's CRC instruction is used

// a(x) * b(x) modulo the polynomial (bit-reflected: bit 31 is x^0).
static uint32_t multmodp(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
  }
  return p;
}

// x^(8 * n) modulo the polynomial.
static uint32_t x8nmodp(size_t n) {
  uint32_t square = 1u << 30;  // x^1
  uint32_t p = 1u << 31;       // x^0
  for (int k = 0; k < 3; k++) square = multmodp(square, square);  // x^8
  while (n) {
    if (n & 1) p = multmodp(square, p);
    n >>= 1;
    square = multmodp(square, square);
  }
  return p;
}

static void make_shift_table(uint32_t table[4][256], size_t bytes) {
  const uint32_t by = x8nmodp(bytes);
  for (int k = 0; k < 4; k++)
    for (uint32_t b = 0; b < 256; b++) table[k][b] = multmodp(by, b << (8 * k));
}

static inline uint32_t shift(const uint32_t table[4][256], uint32_t crc) {
  return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^
         table[3][crc >> 24];
}

static void init_tables(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t crc = n;
    for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ POLY : crc >> 1;
    table8[0][n] = crc;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t crc = table8[0][n];
    for (int k = 1; k < 8; k++) {
      crc = table8[0][crc & 0xff] ^ (crc >> 8);
      table8[k][n] = crc;
    }
  }
  make_shift_table(shift_long, LONG);
  make_shift_table(shift_short, SHORT);
}

// The raw register (no pre- or post-inversion) over data, in software.
static uint32_t sw_raw(uint32_t crc, const unsigned char* p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    crc = table8[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    n--;
  }
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    word ^= crc;  // little-endian: the register meets the first four bytes
    crc = table8[7][word & 0xff] ^ table8[6][(word >> 8) & 0xff] ^
          table8[5][(word >> 16) & 0xff] ^ table8[4][(word >> 24) & 0xff] ^
          table8[3][(word >> 32) & 0xff] ^ table8[2][(word >> 40) & 0xff] ^
          table8[1][(word >> 48) & 0xff] ^ table8[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = table8[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(TS_X86) || defined(TS_ARM)
#if defined(TS_X86)
#define TARGET __attribute__((target("sse4.2")))
#define CRC8(c, b) _mm_crc32_u8((c), (b))
#define CRC64(c, w) ((uint32_t)_mm_crc32_u64((c), (w)))
#else
#define TARGET __attribute__((target("+crc")))
#define CRC8(c, b) __crc32cb((c), (b))
#define CRC64(c, w) __crc32cd((c), (w))
#endif

// Three streams of `lane` bytes each, `rounds` times, joined with `table`.
TARGET static uint32_t hw_lanes(
    uint32_t crc, const unsigned char** pp, size_t* np, size_t lane, const uint32_t table[4][256]) {
  const unsigned char* p = *pp;
  size_t n = *np;
  while (n >= 3 * lane) {
    uint32_t c0 = crc, c1 = 0, c2 = 0;
    const unsigned char* end = p + lane;
    while (p < end) {
      uint64_t w0, w1, w2;
      memcpy(&w0, p, 8);
      memcpy(&w1, p + lane, 8);
      memcpy(&w2, p + 2 * lane, 8);
      c0 = CRC64(c0, w0);
      c1 = CRC64(c1, w1);
      c2 = CRC64(c2, w2);
      p += 8;
    }
    crc = shift(table, shift(table, c0) ^ c1) ^ c2;
    p += 2 * lane;
    n -= 3 * lane;
  }
  *pp = p;
  *np = n;
  return crc;
}

TARGET static uint32_t hw_raw(uint32_t crc, const unsigned char* p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    crc = CRC8(crc, *p++);
    n--;
  }
  crc = hw_lanes(crc, &p, &n, LONG, shift_long);
  crc = hw_lanes(crc, &p, &n, SHORT, shift_short);
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    crc = CRC64(crc, word);
    p += 8;
    n -= 8;
  }
  while (n--) crc = CRC8(crc, *p++);
  return crc;
}
#endif

static uint32_t extend(uint32_t crc, const unsigned char* p, size_t n) {
  crc = ~crc;
#if defined(TS_X86) || defined(TS_ARM)
  if (hardware) return ~hw_raw(crc, p, n);
#endif
  return ~sw_raw(crc, p, n);
}

static PyObject* py_extend(PyObject* self, PyObject* args) {
  unsigned long crc;
  Py_buffer view;
  (void)self;
  if (!PyArg_ParseTuple(args, "ky*:extend", &crc, &view)) return NULL;
  if (crc > 0xffffffffUL) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_ValueError, "extend: crc must be a 32-bit unsigned integer");
    return NULL;
  }
  uint32_t out;
  if (view.len >= (1 << 16)) {
    Py_BEGIN_ALLOW_THREADS out = extend((uint32_t)crc, (const unsigned char*)view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
  } else {
    out = extend((uint32_t)crc, (const unsigned char*)view.buf, (size_t)view.len);
  }
  PyBuffer_Release(&view);
  return PyLong_FromUnsignedLong(out);
}

static PyObject* py_hardware(PyObject* self, PyObject* unused) {
  (void)self;
  (void)unused;
  return PyBool_FromLong(hardware);
}

static PyMethodDef methods[] = {
    {"extend", py_extend, METH_VARARGS,
     "extend(crc, data) -> int: the CRC-32C of the bytes before (crc; 0 to start) and data."},
    {"hardware", py_hardware, METH_NOARGS, "Whether the processor's CRC instruction is used."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_crc32c", NULL, -1, methods};

PyMODINIT_FUNC PyInit__crc32c(void) {
  init_tables();
#if defined(TS_X86)
  __builtin_cpu_init();
  hardware = __builtin_cpu_supports("sse4.2");
#elif defined(TS_ARM)
  hardware = (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#endif
  return PyModule_Create(&module);
}
