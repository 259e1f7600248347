//! A small, safe pickle reader: enough of the protocol for the CIFAR python batches (written by
//! Python 2 with protocol 2), for the same data re-saved by Python 3 (protocols 2–5), and for
//! the dicts of numpy arrays in CIFAR-N's label files. Only whitelisted globals are understood
//! (numpy's array and dtype reconstruction, `_codecs.encode`, `bytes`); nothing is executed.

use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Array(NdArray),
    /// A numpy dtype descriptor such as `u1` or `i8`, with its byte order once known.
    Dtype(String, char),
    /// A whitelisted callable, waiting for REDUCE.
    Global(String, String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    pub dtype: String,
    pub byte_order: char,
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    Raw(Vec<u8>),
    Objects(Vec<Value>),
}

impl Value {
    /// Look up a dict entry by a bytes or str key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(items) = self else {
            return None;
        };
        items.iter().find(|(k, _)| key_is(k, key)).map(|(_, v)| v)
    }

    /// Move a dict entry out (large arrays need not be copied).
    pub fn take(&mut self, key: &str) -> Option<Value> {
        let Value::Dict(items) = self else {
            return None;
        };
        let i = items.iter().position(|(k, _)| key_is(k, key))?;
        Some(items.swap_remove(i).1)
    }

    /// The dict's keys as Python would print them (`b'data'`, `'labels'`), for error messages.
    pub fn keys(&self) -> Vec<String> {
        let Value::Dict(items) = self else {
            return Vec::new();
        };
        items
            .iter()
            .map(|(k, _)| match k {
                Value::Bytes(b) => format!("b'{}'", String::from_utf8_lossy(b)),
                Value::Str(s) => format!("'{s}'"),
                other => other.kind().to_string(),
            })
            .collect()
    }

    /// Integers of a list, tuple or integer numpy array.
    pub fn to_ints(&self) -> Result<Vec<i64>> {
        match self {
            Value::List(v) | Value::Tuple(v) => v
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Ok(*i),
                    other => bail!("expected an integer, found {}", other.kind()),
                })
                .collect(),
            Value::Array(a) => a.to_ints(),
            other => bail!("expected a list of integers, found {}", other.kind()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "a str",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Array(_) => "a numpy array",
            Value::Dtype(..) => "a numpy dtype",
            Value::Global(..) => "a global",
        }
    }
}

/// Python 2 files have `str` (bytes) keys, Python 3 ones may have `str` keys; accept both.
fn key_is(k: &Value, key: &str) -> bool {
    match k {
        Value::Bytes(b) => b == key.as_bytes(),
        Value::Str(s) => s == key,
        _ => false,
    }
}

impl NdArray {
    fn elem_size(&self) -> Option<usize> {
        self.dtype.get(1..).and_then(|s| s.parse().ok())
    }

    /// Elements as i64, for integer dtypes (`u1`, `i1` … `i8`, `u8`).
    pub fn to_ints(&self) -> Result<Vec<i64>> {
        let ArrayData::Raw(bytes) = &self.data else {
            bail!("expected a numeric array, found an object array")
        };
        let size = self.elem_size().context("array dtype has no size")?;
        let signed = match self.dtype.as_bytes()[0] {
            b'i' => true,
            b'u' => false,
            _ => bail!("expected an integer array, found dtype {}", self.dtype),
        };
        ensure!(
            matches!(size, 1 | 2 | 4 | 8),
            "unsupported integer size {size}"
        );
        ensure!(
            bytes.len().is_multiple_of(size),
            "array data is not a whole number of elements"
        );
        Ok(bytes
            .chunks(size)
            .map(|c| int_from(c, signed, self.byte_order == '>'))
            .collect())
    }
}

fn int_from(bytes: &[u8], signed: bool, big_endian: bool) -> i64 {
    let mut buf = [0u8; 8];
    let n = bytes.len();
    if big_endian {
        buf[8 - n..].copy_from_slice(bytes);
        buf.reverse();
    } else {
        buf[..n].copy_from_slice(bytes);
    }
    let unsigned = u64::from_le_bytes(buf);
    if signed && n < 8 && bytes[if big_endian { 0 } else { n - 1 }] & 0x80 != 0 {
        (unsigned | (!0u64 << (8 * n))) as i64
    } else {
        unsigned as i64
    }
}

/// Parse one pickle; `what` names the source in errors.
pub fn parse(data: &[u8], what: &str) -> Result<Value> {
    Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    }
    .run()
    .with_context(|| format!("{what}: not a readable pickle"))
}

/// Opcode names from CPython's pickletools, for error messages.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    /// A map, not a Vec: memo ids come from the file, and a huge one must not allocate.
    memo: HashMap<usize, Value>,
}

impl<'a> Machine<'a> {
    fn run(mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.take(1)?[0];
            if op == b'.' {
                return self.pop().context("STOP with an empty stack");
            }
            self.step(op).with_context(|| match opcode_name(op) {
                Some(name) => format!("opcode {name} (0x{op:02x}) at offset {at}"),
                None => format!("unknown opcode 0x{op:02x} at offset {at}"),
            })?;
        }
    }

    /// One opcode; the groups below keep each arm to one line.
    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 | 0x95 => self.skip_header(op),
            b'(' | b'0' | b'1' | b'2' => self.stack_op(op),
            b'N' | 0x88 | 0x89 | b'J' | b'K' | b'M' | 0x8a | b'I' | b'L' | b'F' | b'G' => {
                let v = self.scalar(op)?;
                self.push(v)
            }
            b'U' | b'C' | b'T' | b'B' | 0x8e | 0x96 | 0x8c | b'X' | 0x8d | b'V' => {
                let v = self.text(op)?;
                self.push(v)
            }
            b']' | b'}' | b')' | b'l' | b't' | b'd' | 0x85..=0x87 => self.collection(op),
            b'a' | b'e' | b's' | b'u' => self.extend(op),
            b'c' | 0x93 | b'R' | b'b' => self.object(op),
            b'q' | b'r' | b'p' | 0x94 | b'h' | b'j' | b'g' => self.memo_op(op),
            b'Q' | b'P' => {
                bail!("persistent ids (torch tensors) are not supported; save labels as numpy arrays or lists")
            }
            _ => bail!("not supported by this reader"),
        }
    }

    fn skip_header(&mut self, op: u8) -> Result<()> {
        // PROTO's version and FRAME's length carry nothing a sequential reader needs.
        self.take(if op == 0x80 { 1 } else { 8 })?;
        Ok(())
    }

    fn stack_op(&mut self, op: u8) -> Result<()> {
        match op {
            b'(' => self.marks.push(self.stack.len()),
            b'0' => drop(self.pop()?),
            b'1' => drop(self.pop_mark()?),
            _ => {
                let top = self.stack.last().context("DUP of an empty stack")?.clone();
                self.stack.push(top);
            }
        }
        Ok(())
    }

    fn scalar(&mut self, op: u8) -> Result<Value> {
        Ok(match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i32::from_le_bytes(self.array()?).into()),
            b'K' => Value::Int(self.take(1)?[0].into()),
            b'M' => Value::Int(u16::from_le_bytes(self.array()?).into()),
            0x8a => {
                let n = self.take(1)?[0] as usize;
                ensure!(n <= 8, "integer of {n} bytes is too large");
                let bytes = self.take(n)?;
                Value::Int(if n == 0 {
                    0
                } else {
                    int_from(bytes, true, false)
                })
            }
            b'I' | b'L' => match self.line()?.trim_end_matches('L') {
                "01" => Value::Bool(true),
                "00" => Value::Bool(false),
                t => Value::Int(t.parse().with_context(|| format!("bad integer '{t}'"))?),
            },
            b'F' => {
                let t = self.line()?;
                Value::Float(t.parse().with_context(|| format!("bad float '{t}'"))?)
            }
            _ => Value::Float(f64::from_be_bytes(self.array()?)),
        })
    }

    /// Bytes and strings. Python 2's `str` (BINSTRING) is bytes, as `encoding='bytes'` reads it.
    fn text(&mut self, op: u8) -> Result<Value> {
        let width = match op {
            b'U' | b'C' | 0x8c => 1,
            b'T' | b'B' | b'X' => 4,
            b'V' => return Ok(Value::Str(self.line()?)),
            _ => 8,
        };
        let n = self.length(width)?;
        let raw = self.take(n)?;
        if matches!(op, 0x8c | b'X' | 0x8d) && n >= LARGE && self.before_latin1_encode() {
            if let Some(bytes) = latin1_from_utf8(raw) {
                return Ok(Value::Bytes(bytes));
            }
        }
        Ok(match op {
            0x8c | b'X' | 0x8d => Value::Str(
                std::str::from_utf8(raw)
                    .context("string is not UTF-8")?
                    .to_owned(),
            ),
            _ => Value::Bytes(raw.to_vec()),
        })
    }

    /// Python 3 writes bytes under protocol 2 as `_codecs.encode(<str>, 'latin1')`, and a CIFAR
    /// batch is one 46 MB str of that kind. Turning it straight into bytes skips UTF-8 validation
    /// and a char-by-char pass, which were most of the load time. Only large strings qualify:
    /// those are never shared (interned) objects, so the memo cannot return these bytes where a
    /// str is meant; REDUCE still checks that the encoding is latin1.
    fn before_latin1_encode(&self) -> bool {
        matches!(self.stack.last(), Some(Value::Global(m, f)) if m == "_codecs" && f == "encode")
    }

    fn collection(&mut self, op: u8) -> Result<()> {
        let v = match op {
            b']' => Value::List(Vec::new()),
            b'}' => Value::Dict(Vec::new()),
            b')' => Value::Tuple(Vec::new()),
            b'l' => Value::List(self.pop_mark()?),
            b't' => Value::Tuple(self.pop_mark()?),
            b'd' => Value::Dict(pairs(self.pop_mark()?)?),
            _ => {
                let n = (op - 0x84) as usize;
                ensure!(self.stack.len() >= n, "stack underflow");
                Value::Tuple(self.stack.split_off(self.stack.len() - n))
            }
        };
        self.push(v)
    }

    fn extend(&mut self, op: u8) -> Result<()> {
        let items = match op {
            b'a' | b's' => {
                let n = if op == b'a' { 1 } else { 2 };
                ensure!(self.stack.len() > n, "stack underflow");
                self.stack.split_off(self.stack.len() - n)
            }
            _ => self.pop_mark()?,
        };
        match (self.stack.last_mut(), op) {
            (Some(Value::List(list)), b'a' | b'e') => list.extend(items),
            (Some(Value::Dict(dict)), b's' | b'u') => dict.extend(pairs(items)?),
            (top, _) => bail!(
                "cannot add items to {}",
                top.map_or("an empty stack", |v| v.kind())
            ),
        }
        Ok(())
    }

    fn object(&mut self, op: u8) -> Result<()> {
        let v = match op {
            b'c' => {
                let module = self.line()?;
                global(module, self.line()?)?
            }
            0x93 => {
                let name = self.pop_str()?;
                global(self.pop_str()?, name)?
            }
            b'R' => {
                let args = self.pop()?;
                reduce(self.pop()?, args)?
            }
            _ => {
                let state = self.pop()?;
                build(self.pop()?, state)?
            }
        };
        self.push(v)
    }

    fn memo_op(&mut self, op: u8) -> Result<()> {
        let index = match op {
            b'q' | b'h' => self.take(1)?[0] as usize,
            b'r' | b'j' => u32::from_le_bytes(self.array()?) as usize,
            b'p' | b'g' => {
                let t = self.line()?;
                t.parse().with_context(|| format!("bad memo index '{t}'"))?
            }
            _ => self.memo.len(),
        };
        if matches!(op, b'h' | b'j' | b'g') {
            let v = self.memo.get(&index).cloned();
            self.push(v.with_context(|| format!("memo {index} is empty"))?)
        } else {
            let top = self.stack.last().context("memo of an empty stack")?;
            self.memo.insert(index, top.clone());
            Ok(())
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let rest = self.data.len() - self.pos;
        ensure!(
            n <= rest,
            "truncated: needed {n} bytes at offset {}, only {rest} left",
            self.pos
        );
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .context("truncated: unterminated line")?;
        self.pos += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn length(&mut self, width: usize) -> Result<usize> {
        let mut buf = [0u8; 8];
        buf[..width].copy_from_slice(self.take(width)?);
        usize::try_from(u64::from_le_bytes(buf)).context("length does not fit in memory")
    }

    fn push(&mut self, v: Value) -> Result<()> {
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().context("stack underflow")
    }

    fn pop_str(&mut self) -> Result<String> {
        match self.pop()? {
            Value::Str(s) => Ok(s),
            other => bail!("expected a str, found {}", other.kind()),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.marks.pop().context("no MARK on the stack")?;
        ensure!(mark <= self.stack.len(), "MARK beyond the stack");
        Ok(self.stack.split_off(mark))
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    ensure!(items.len().is_multiple_of(2), "odd number of dict items");
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// Everything a pickle may name. numpy 2 moved `numpy.core` to `numpy._core`; Python 3 writes
/// bytes as `_codecs.encode` (and empty bytes as `bytes()`) under protocol 2.
const ALLOWED: [(&str, &str); 9] = [
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),
    ("__builtin__", "bytes"),
    ("builtins", "bytes"),
];

fn global(module: String, name: String) -> Result<Value> {
    ensure!(
        ALLOWED.iter().any(|&(m, n)| m == module && n == name),
        "the pickle refers to {module}.{name}, which this reader does not allow"
    );
    Ok(Value::Global(module, name))
}

fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(module, name) = callable else {
        bail!("REDUCE of {}", callable.kind())
    };
    let Value::Tuple(args) = args else {
        bail!("REDUCE arguments are {}", args.kind())
    };
    match (name.as_str(), args.as_slice()) {
        // An empty array of the class; BUILD fills it in.
        ("_reconstruct", [Value::Global(_, class), ..]) if class == "ndarray" => {
            Ok(Value::Array(NdArray {
                dtype: String::new(),
                byte_order: '|',
                shape: Vec::new(),
                data: ArrayData::Raw(Vec::new()),
            }))
        }
        ("dtype", [d, ..]) => dtype(d),
        ("encode", _) => encode(args),
        ("bytes", []) => Ok(Value::Bytes(Vec::new())),
        ("_frombuffer", _) => from_buffer(args),
        _ => bail!(
            "unsupported call {module}.{name} with {} argument(s)",
            args.len()
        ),
    }
}

fn dtype(d: &Value) -> Result<Value> {
    let d = text_of(d).context("numpy dtype without a type code")?;
    Ok(match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => Value::Dtype(d[1..].to_string(), c),
        _ => Value::Dtype(d, '|'),
    })
}

/// Strings this long in front of `_codecs.encode` are decoded to bytes as they are read.
const LARGE: usize = 4096;

/// `_codecs.encode(s, 'latin1')`: each char is one byte. Large `s` arrive already decoded.
fn encode(args: Vec<Value>) -> Result<Value> {
    let Ok([text, encoding]) = <[Value; 2]>::try_from(args) else {
        bail!("_codecs.encode takes (str, encoding)");
    };
    ensure!(
        matches!(text_of(&encoding).as_deref(), Some("latin1" | "latin-1")),
        "_codecs.encode with encoding {encoding:?}; only latin1 is understood"
    );
    match text {
        Value::Bytes(b) => Ok(Value::Bytes(b)),
        Value::Str(s) => latin1_from_utf8(s.as_bytes())
            .map(Value::Bytes)
            .context("_codecs.encode of a str with characters above U+00FF"),
        other => bail!("_codecs.encode of {}", other.kind()),
    }
}

/// UTF-8 of characters up to U+00FF (one byte, or 0xC2/0xC3 and a continuation byte) to
/// latin-1; None for anything else. Branch-free per byte: pixel data is random, so branches on
/// it would mispredict half the time.
fn latin1_from_utf8(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; raw.len()];
    let (mut i, mut j, mut valid) = (0, 0, true);
    while i + 1 < raw.len() {
        let (b, c) = (raw[i], raw[i + 1]);
        let two = b >> 7; // 1 for a two-byte sequence
        let mask = 0u8.wrapping_sub(two);
        let wide = ((b & 0x03) << 6) | (c & 0x3f);
        out[j] = (b & !mask) | (wide & mask);
        valid &= (two == 0) | (((b & 0xfe) == 0xc2) & ((c & 0xc0) == 0x80)); // `|`, `&`: no branches
        i += 1 + two as usize;
        j += 1;
    }
    if i < raw.len() {
        // A last lone byte must be ASCII.
        valid &= raw[i] < 0x80;
        out[j] = raw[i];
        j += 1;
    }
    out.truncate(j);
    valid.then_some(out)
}

/// A str, or the bytes of a Python 2 `str`.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn build(target: Value, state: Value) -> Result<Value> {
    match (target, state) {
        (Value::Dtype(code, _), Value::Tuple(s)) => {
            let order = s
                .get(1)
                .and_then(text_of)
                .and_then(|o| o.chars().next())
                .unwrap_or('|');
            Ok(Value::Dtype(code, order))
        }
        (Value::Array(_), Value::Tuple(s)) => array_from_state(s),
        (t, s) => bail!("BUILD of {} with {}", t.kind(), s.kind()),
    }
}

/// numpy's `ndarray.__setstate__`: (version, shape, dtype, is_fortran, data). The data is moved,
/// not copied: it is the whole CIFAR batch.
fn array_from_state(state: Vec<Value>) -> Result<Value> {
    let Ok([_, shape, dtype, fortran, data]) = <[Value; 5]>::try_from(state) else {
        bail!("numpy array state is not (version, shape, dtype, is_fortran, data)");
    };
    ensure!(
        matches!(fortran, Value::Bool(false) | Value::Int(0)),
        "Fortran-ordered arrays are not supported"
    );
    let data = match data {
        Value::Bytes(b) => ArrayData::Raw(b),
        Value::List(items) => ArrayData::Objects(items),
        other => bail!("array data is {}", other.kind()),
    };
    new_array(shape, dtype, data)
}

/// Protocol 5's `_frombuffer(buffer, dtype, shape, order)`.
fn from_buffer(args: Vec<Value>) -> Result<Value> {
    let Ok([buffer, dtype, shape, order]) = <[Value; 4]>::try_from(args) else {
        bail!("_frombuffer takes (buffer, dtype, shape, order)");
    };
    ensure!(
        text_of(&order).as_deref() == Some("C"),
        "Fortran-ordered arrays are not supported"
    );
    let Value::Bytes(raw) = buffer else {
        bail!(
            "_frombuffer of {} (out-of-band buffers are not supported)",
            buffer.kind()
        )
    };
    new_array(shape, dtype, ArrayData::Raw(raw))
}

fn new_array(shape: Value, dtype: Value, data: ArrayData) -> Result<Value> {
    let (Value::Tuple(dims), Value::Dtype(dtype, byte_order)) = (shape, dtype) else {
        bail!("numpy array without a shape tuple and dtype");
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            other => bail!("bad array dimension {other:?}"),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::Array(NdArray {
        dtype,
        byte_order,
        shape,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(p: &[u8]) -> String {
        format!("{:#}", parse(p, "test.pkl").unwrap_err())
    }

    #[test]
    fn protocol2_dict_with_ints() {
        // pickle.dumps({b'labels': [1, 300, 70000]}, protocol=2), by hand:
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'(', b'C', 6];
        p.extend(b"labels");
        p.extend([
            b']', b'q', 1, b'(', b'K', 1, b'M', 0x2c, 0x01, b'J', 0x70, 0x11, 0x01, 0x00, b'e',
            b'u', b'.',
        ]);
        let v = parse(&p, "test").unwrap();
        assert_eq!(v.get("labels").unwrap().to_ints().unwrap(), [1, 300, 70000]);
    }

    /// The layout of the real `cifar-10-batches-py/data_batch_1` (Python 2 cPickle, numpy 1.x),
    /// shrunk to a 2×3 array: str keys as SHORT_BINSTRING, memo ids from 1, dtype args as ints,
    /// pixel data as BINSTRING.
    #[test]
    fn python2_cifar_layout() {
        let mut p =
            b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03".to_vec();
        p.extend(b"cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01K\x02K\x03\x86");
        p.extend(b"cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07");
        p.extend(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89");
        p.extend(
            b"T\x06\x00\x00\x00\x01\x02\x03\xfd\xfe\xfftbU\x06labelsq\x08]q\x09(K\x07K\x09eu.",
        );
        let v = parse(&p, "py2").unwrap();
        let Some(Value::Array(a)) = v.get("data") else {
            panic!("{v:?}")
        };
        assert_eq!((a.dtype.as_str(), a.byte_order), ("u1", '|'));
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, ArrayData::Raw(vec![1, 2, 3, 253, 254, 255]));
        assert_eq!(v.get("labels").unwrap().to_ints().unwrap(), [7, 9]);
        assert_eq!(v.keys(), ["b'data'", "b'labels'"]);
    }

    #[test]
    fn python3_protocol2_bytes_via_codecs() {
        // _codecs.encode('\xff\x00', 'latin1'): the str is UTF-8 in the file (c3 bf 00).
        let p = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00\xc3\xbf\x00q\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.";
        assert_eq!(parse(p, "t").unwrap(), Value::Bytes(vec![0xff, 0]));
        let empty = b"\x80\x02c__builtin__\nbytes\n)R.";
        assert_eq!(parse(empty, "t").unwrap(), Value::Bytes(vec![]));
    }

    #[test]
    fn large_codecs_strings_become_bytes_directly() {
        let all: Vec<u8> = (0..=255u8).cycle().take(LARGE + 3).collect();
        let text: String = all.iter().map(|&b| char::from(b)).collect();
        let mut p = b"\x80\x02c_codecs\nencode\nq\x00X".to_vec();
        p.extend((text.len() as u32).to_le_bytes());
        p.extend(text.as_bytes());
        p.extend(b"q\x01X\x06\x00\x00\x00latin1\x86R.");
        assert_eq!(parse(&p, "t").unwrap(), Value::Bytes(all));
        // Characters above U+00FF are not latin1: the str path reports it.
        let mut p = b"\x80\x02c_codecs\nencode\nX".to_vec();
        let wide = "\u{100}".repeat(LARGE);
        p.extend((wide.len() as u32).to_le_bytes());
        p.extend(wide.as_bytes());
        p.extend(b"X\x06\x00\x00\x00latin1\x86R.");
        assert!(err_of(&p).contains("above U+00FF"), "{}", err_of(&p));
        let bad_encoding =
            b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8\x86R.";
        assert!(err_of(bad_encoding).contains("only latin1"));
    }

    #[test]
    fn protocol4_stack_global_and_memoize() {
        // numpy.dtype('i8', False, True) by STACK_GLOBAL, then BUILD with byte order '<'.
        let mut p = vec![0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0];
        p.extend(b"\x8c\x05numpy\x94\x8c\x05dtype\x94\x93\x94\x8c\x02i8\x94\x89\x88\x87\x94R\x94");
        p.extend(b"(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b.");
        assert_eq!(parse(&p, "t").unwrap(), Value::Dtype("i8".into(), '<'));
    }

    #[test]
    fn unknown_global_is_refused() {
        let err = err_of(b"cos\nsystem\n(S'x'\ntR.");
        assert!(
            err.contains("os.system") && err.contains("test.pkl") && err.contains("offset 0"),
            "{err}"
        );
    }

    #[test]
    fn unknown_and_unsupported_opcodes_are_named_with_offset() {
        let err = err_of(b"\x80\x02K\x01\xff.");
        assert!(err.contains("unknown opcode 0xff at offset 4"), "{err}");
        let err = err_of(b"\x80\x02]\x8f.");
        assert!(err.contains("EMPTY_SET (0x8f) at offset 3"), "{err}");
    }

    #[test]
    fn truncation_and_huge_lengths_are_errors_not_panics() {
        let err = err_of(b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f");
        assert!(err.contains("truncated"), "{err}");
        let err = err_of(b"\x80\x02K\x01r\xff\xff\xff\xffj\x00\x00\x00\x00.");
        assert!(err.contains("memo 0 is empty"), "{err}");
        assert!(err_of(b"\x80\x02K").contains("truncated"));
    }

    #[test]
    fn ints_of_every_width() {
        assert_eq!(int_from(&[0xff], true, false), -1);
        assert_eq!(int_from(&[0xff], false, false), 255);
        assert_eq!(int_from(&[0x01, 0x00], true, true), 256);
        assert_eq!(int_from(&[0xfe, 0xff, 0xff, 0xff], true, false), -2);
    }
}
