//! A small, safe pickle reader: enough of the protocol for the CIFAR python batches (written by
//! Python 2, protocol 2) and for numpy arrays and dicts written by Python 3 (protocols 2–4),
//! as in CIFAR-N's label files. Only whitelisted globals are understood (numpy's array and
//! dtype reconstruction, `_codecs.encode`); nothing is ever executed.

use anyhow::{bail, ensure, Context, Result};

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
        items.iter().find_map(|(k, v)| match k {
            Value::Bytes(b) if b == key.as_bytes() => Some(v),
            Value::Str(s) if s == key => Some(v),
            _ => None,
        })
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
            bytes.len() % size == 0,
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
        memo: Vec::new(),
    }
    .run()
    .with_context(|| format!("{what}: not a readable pickle"))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
}

impl<'a> Machine<'a> {
    fn run(mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.take(1)?[0];
            if op == b'.' {
                return self.pop();
            }
            self.step(op)
                .with_context(|| format!("opcode 0x{op:02x} at offset {at}"))?;
        }
    }

    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => drop(self.take(1)?),   // PROTO
            0x95 => drop(self.take(8)?),   // FRAME
            b'(' => self.marks.push(self.stack.len()),
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.take(4)?.try_into()?);
                self.stack.push(Value::Int(v.into()))
            }
            b'K' => {
                let v = self.take(1)?[0];
                self.stack.push(Value::Int(v.into()))
            }
            b'M' => {
                let v = u16::from_le_bytes(self.take(2)?.try_into()?);
                self.stack.push(Value::Int(v.into()))
            }
            0x8a => {
                let n = self.take(1)?[0] as usize;
                ensure!(n <= 8, "integer of {n} bytes is too large");
                let bytes = self.take(n)?;
                let v = if n == 0 { 0 } else { int_from(bytes, true, false) };
                self.stack.push(Value::Int(v))
            }
            b'I' | b'L' => {
                let line = self.line()?;
                let text = line.trim_end_matches('L');
                let v = match text {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    t => Value::Int(t.parse().with_context(|| format!("bad integer '{t}'"))?),
                };
                self.stack.push(v)
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into()?);
                self.stack.push(Value::Float(v))
            }
            b'U' | b'C' => self.push_bytes(1)?,
            b'T' | b'B' => self.push_bytes(4)?,
            0x8e => self.push_bytes(8)?,
            0x8c => self.push_str(1)?,
            b'X' => self.push_str(4)?,
            0x8d => self.push_str(8)?,
            b'V' => {
                let s = self.line()?;
                self.stack.push(Value::Str(s))
            }
            b']' => self.stack.push(Value::List(Vec::new())),
            b'}' => self.stack.push(Value::Dict(Vec::new())),
            b')' => self.stack.push(Value::Tuple(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::List(items))
            }
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items))
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Dict(pairs(items)?))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                ensure!(self.stack.len() >= n, "stack underflow");
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Value::Tuple(items))
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_list(vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.extend_dict(vec![(k, v)])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_dict(pairs(items)?)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.stack.push(global(module, name)?)
            }
            0x93 => {
                let name = self.pop_str()?;
                let module = self.pop_str()?;
                self.stack.push(global(module, name)?)
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.stack.push(reduce(callable, args)?)
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.pop()?;
                self.stack.push(build(target, state)?)
            }
            b'q' => {
                let i = self.take(1)?[0] as usize;
                self.put(i)?
            }
            b'r' => {
                let i = u32::from_le_bytes(self.take(4)?.try_into()?) as usize;
                self.put(i)?
            }
            b'p' => {
                let i = self.line()?.parse()?;
                self.put(i)?
            }
            0x94 => self.put(self.memo.len())?,
            b'h' => {
                let i = self.take(1)?[0] as usize;
                self.get(i)?
            }
            b'j' => {
                let i = u32::from_le_bytes(self.take(4)?.try_into()?) as usize;
                self.get(i)?
            }
            b'g' => {
                let i = self.line()?.parse()?;
                self.get(i)?
            }
            b'Q' | b'P' => bail!("persistent ids (torch tensors) are not supported; save labels as numpy arrays or lists"),
            other => bail!("unsupported pickle opcode 0x{other:02x}"),
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(
            self.pos + n <= self.data.len(),
            "truncated: needed {n} more bytes at offset {}",
            self.pos
        );
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
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
        Ok(u64::from_le_bytes(buf) as usize)
    }

    fn push_bytes(&mut self, width: usize) -> Result<()> {
        let n = self.length(width)?;
        let b = self.take(n)?.to_vec();
        self.stack.push(Value::Bytes(b));
        Ok(())
    }

    fn push_str(&mut self, width: usize) -> Result<()> {
        let n = self.length(width)?;
        let s = String::from_utf8(self.take(n)?.to_vec()).context("string is not UTF-8")?;
        self.stack.push(Value::Str(s));
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

    fn extend_list(&mut self, items: Vec<Value>) -> Result<()> {
        match self.stack.last_mut() {
            Some(Value::List(list)) => Ok(list.extend(items)),
            _ => bail!("APPEND without a list"),
        }
    }

    fn extend_dict(&mut self, items: Vec<(Value, Value)>) -> Result<()> {
        match self.stack.last_mut() {
            Some(Value::Dict(dict)) => Ok(dict.extend(items)),
            _ => bail!("SETITEM without a dict"),
        }
    }

    fn put(&mut self, i: usize) -> Result<()> {
        let top = self.stack.last().context("memo of an empty stack")?.clone();
        if self.memo.len() <= i {
            self.memo.resize(i + 1, None);
        }
        self.memo[i] = Some(top);
        Ok(())
    }

    fn get(&mut self, i: usize) -> Result<()> {
        let v = self
            .memo
            .get(i)
            .cloned()
            .flatten()
            .with_context(|| format!("memo {i} is empty"))?;
        self.stack.push(v);
        Ok(())
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    ensure!(items.len() % 2 == 0, "odd number of dict items");
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

const ALLOWED: [(&str, &str); 5] = [
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),
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
        ("_reconstruct", _) => Ok(Value::Array(NdArray {
            dtype: String::new(),
            byte_order: '|',
            shape: Vec::new(),
            data: ArrayData::Raw(Vec::new()),
        })),
        ("dtype", [d, ..]) => {
            let d = text_of(d).context("numpy dtype without a type code")?;
            let (order, code) = match d.chars().next() {
                Some(c @ ('<' | '>' | '|' | '=')) => (c, d[1..].to_string()),
                _ => ('|', d.clone()),
            };
            Ok(Value::Dtype(code, order))
        }
        ("encode", [Value::Str(s), ..]) => {
            Ok(Value::Bytes(s.chars().map(|c| c as u32 as u8).collect()))
        }
        _ => bail!("unsupported call {module}.{name}{args:?}"),
    }
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

/// numpy's `ndarray.__setstate__`: (version, shape, dtype, is_fortran, data).
fn array_from_state(s: Vec<Value>) -> Result<Value> {
    let [_, Value::Tuple(shape), Value::Dtype(dtype, order), Value::Bool(fortran), data] =
        s.as_slice()
    else {
        bail!("unexpected numpy array state");
    };
    ensure!(!*fortran, "Fortran-ordered arrays are not supported");
    let shape = shape
        .iter()
        .map(|d| match d {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            _ => bail!("bad array dimension"),
        })
        .collect::<Result<Vec<_>>>()?;
    let data = match data {
        Value::Bytes(b) => ArrayData::Raw(b.clone()),
        Value::List(items) => ArrayData::Objects(items.clone()),
        other => bail!("array data is {}", other.kind()),
    };
    Ok(Value::Array(NdArray {
        dtype: dtype.clone(),
        byte_order: *order,
        shape,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn unknown_global_is_refused() {
        let p = b"cos\nsystem\n(S'x'\ntR.";
        let err = format!("{:#}", parse(p, "evil").unwrap_err());
        assert!(err.contains("os.system"), "{err}");
    }

    #[test]
    fn ints_of_every_width() {
        assert_eq!(int_from(&[0xff], true, false), -1);
        assert_eq!(int_from(&[0xff], false, false), 255);
        assert_eq!(int_from(&[0x01, 0x00], true, true), 256);
        assert_eq!(int_from(&[0xfe, 0xff, 0xff, 0xff], true, false), -2);
    }
}
