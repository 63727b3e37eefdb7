//! The ncnn `.param` text format.
//!
//! ```text
//! 7767517
//! <layer count> <blob count>
//! <type> <name> <bottom count> <top count> <bottoms...> <tops...> <params...>
//! ```
//!
//! A param is `id=value`: an int (`0=8`), a float (any value with `.`, `e` or
//! `E`, as ncnn decides: `2=1.000000e-10`), an array — old style
//! `-233xx=n,v1,...,vn` (id xx) or new style `id=v1,v2,...` — or a string
//! (`id="text"`, or unquoted when it starts with a letter). Each param keeps the
//! text it was read from, so writing a file back reproduces every untouched
//! param exactly (pnnx's column layout is used for the line head).
//!
//! Parsing checks what the fuser relies on: the magic, that the counts on line
//! 2 match the layers and distinct blobs, that every bottom is a blob some
//! earlier layer produced, that no blob is produced twice, and that every value
//! is a well-formed number.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::ModelError;

/// ncnn's `.param` magic number.
pub const MAGIC: &str = "7767517";

/// A param value, typed as ncnn types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i32),
    Float(f32),
    IntArray(Vec<i32>),
    FloatArray(Vec<f32>),
    Str(String),
}

/// One `id=value` of a layer line.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The param id (`3` for both `3=...` and `-23303=...`).
    pub id: i32,
    pub value: Value,
    /// The token as written (`-23303=1,0`), used to write it back unchanged.
    text: String,
}

impl Param {
    /// An int param, written `id=v`.
    pub fn int(id: i32, v: i32) -> Param {
        Param {
            id,
            value: Value::Int(v),
            text: format!("{id}={v}"),
        }
    }

    /// A float param, written with `e` notation and enough digits to read back
    /// as the same f32.
    pub fn float(id: i32, v: f32) -> Param {
        Param {
            id,
            value: Value::Float(v),
            text: format!("{id}={v:e}"),
        }
    }

    /// A float param whose value text is copied from another param (so ncnn
    /// parses exactly the same text, hence the same f32).
    pub fn float_from(id: i32, source: &Param) -> Option<Param> {
        match source.value {
            Value::Float(v) => Some(Param {
                id,
                value: Value::Float(v),
                text: format!("{id}={}", source.value_text()),
            }),
            _ => None,
        }
    }

    /// The token as written (the writer reads the field itself; this is
    /// for the tests).
    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The part after `=`.
    pub fn value_text(&self) -> &str {
        self.text.split_once('=').map(|(_, v)| v).unwrap_or("")
    }

    /// The value as an int (ints only).
    pub fn as_int(&self) -> Option<i32> {
        match self.value {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a float: floats, and ints (ncnn's `pd.get(id, 0.f)` does
    /// not convert, but a converter writing `2=0` for 0.0 is common enough).
    pub fn as_float(&self) -> Option<f32> {
        match self.value {
            Value::Float(v) => Some(v),
            Value::Int(v) => Some(v as f32),
            _ => None,
        }
    }
}

/// One layer line.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub ty: String,
    pub name: String,
    pub bottoms: Vec<String>,
    pub tops: Vec<String>,
    pub params: Vec<Param>,
}

impl Layer {
    pub fn param(&self, id: i32) -> Option<&Param> {
        self.params.iter().find(|p| p.id == id)
    }

    /// Int param `id`, or `default` when absent. A present param of another
    /// type is an error (ncnn would read garbage).
    pub fn int(&self, id: i32, default: i32) -> Result<i32, String> {
        match self.param(id) {
            None => Ok(default),
            Some(p) => p.as_int().ok_or_else(|| {
                format!(
                    "{} {}: param {id} should be an int, is {}",
                    self.ty, self.name, p.text
                )
            }),
        }
    }

    /// Float param `id`, or `default` when absent.
    pub fn float(&self, id: i32, default: f32) -> Result<f32, String> {
        match self.param(id) {
            None => Ok(default),
            Some(p) => p.as_float().ok_or_else(|| {
                format!(
                    "{} {}: param {id} should be a float, is {}",
                    self.ty, self.name, p.text
                )
            }),
        }
    }

    /// Int array param `id` (empty when absent).
    pub fn int_array(&self, id: i32) -> Result<Vec<i32>, String> {
        match self.param(id).map(|p| &p.value) {
            None => Ok(Vec::new()),
            Some(Value::IntArray(v)) => Ok(v.clone()),
            Some(Value::FloatArray(v)) if v.is_empty() => Ok(Vec::new()),
            Some(_) => Err(format!(
                "{} {}: param {id} should be an int array",
                self.ty, self.name
            )),
        }
    }

    /// The line as written to a `.param` (pnnx's column widths).
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "{:<24} {:<24} {} {}",
            self.ty,
            self.name,
            self.bottoms.len(),
            self.tops.len()
        );
        for b in self.bottoms.iter().chain(&self.tops) {
            let _ = write!(s, " {b}");
        }
        for p in &self.params {
            let _ = write!(s, " {}", p.text);
        }
        s
    }
}

/// A parsed `.param`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamFile {
    pub layers: Vec<Layer>,
}

impl ParamFile {
    /// Parses and checks a `.param` text.
    pub fn parse(text: &str) -> Result<ParamFile, ModelError> {
        let err = |line: usize, msg: String| ModelError::Param { line, msg };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        let (n, magic) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
        if magic.trim() != MAGIC {
            return Err(err(
                n,
                format!(
                    "bad magic {:?} (an ncnn .param starts with {MAGIC})",
                    magic.trim()
                ),
            ));
        }
        let (n, counts) = lines
            .next()
            .ok_or_else(|| err(2, "missing layer and blob counts".into()))?;
        let counts: Vec<&str> = counts.split_whitespace().collect();
        let (layer_count, blob_count) = match counts[..] {
            [l, b] => (
                l.parse::<usize>()
                    .map_err(|_| err(n, format!("bad layer count {l:?}")))?,
                b.parse::<usize>()
                    .map_err(|_| err(n, format!("bad blob count {b:?}")))?,
            ),
            _ => return Err(err(n, "expected `<layer count> <blob count>`".into())),
        };
        let mut layers = Vec::new();
        let mut produced: HashSet<String> = HashSet::new();
        let mut names: HashSet<String> = HashSet::new();
        for (n, line) in lines {
            let layer = parse_layer(line).map_err(|m| err(n, m))?;
            for b in &layer.bottoms {
                if !produced.contains(b) {
                    return Err(err(
                        n,
                        format!(
                            "{} {} reads blob {b:?} that no earlier layer produces",
                            layer.ty, layer.name
                        ),
                    ));
                }
            }
            for t in &layer.tops {
                if !produced.insert(t.clone()) {
                    return Err(err(
                        n,
                        format!(
                            "{} {} produces blob {t:?} a second time",
                            layer.ty, layer.name
                        ),
                    ));
                }
            }
            if !names.insert(layer.name.clone()) {
                return Err(err(n, format!("two layers are named {:?}", layer.name)));
            }
            layers.push(layer);
        }
        if layers.len() != layer_count {
            return Err(err(
                2,
                format!("says {layer_count} layers, the file has {}", layers.len()),
            ));
        }
        if produced.len() != blob_count {
            return Err(err(
                2,
                format!(
                    "says {blob_count} blobs, the layers name {}",
                    produced.len()
                ),
            ));
        }
        Ok(ParamFile { layers })
    }

    /// Number of distinct blobs.
    pub fn blob_count(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| &l.tops)
            .collect::<HashSet<_>>()
            .len()
    }

    /// The `.param` text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{MAGIC}\n{} {}\n", self.layers.len(), self.blob_count());
        for l in &self.layers {
            s.push_str(&l.to_line());
            s.push('\n');
        }
        s
    }

    /// Blob name -> index of the layer producing it.
    pub fn producers(&self) -> HashMap<&str, usize> {
        let mut m = HashMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            for t in &l.tops {
                m.insert(t.as_str(), i);
            }
        }
        m
    }

    /// Blob name -> indices of the layers reading it (a layer reading a blob
    /// twice appears twice).
    pub fn consumers(&self) -> HashMap<&str, Vec<usize>> {
        let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            for b in &l.bottoms {
                m.entry(b.as_str()).or_default().push(i);
            }
        }
        m
    }
}

/// One layer line: head tokens by whitespace, then params scanned like ncnn's
/// `ParamDict::load_param` (quoted strings may hold spaces).
fn parse_layer(line: &str) -> Result<Layer, String> {
    let mut rest = line.trim_start();
    let mut next = |what: &str| -> Result<&str, String> {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        if end == 0 {
            return Err(format!("missing {what}"));
        }
        rest = &t[end..];
        Ok(&t[..end])
    };
    let ty = next("layer type")?.to_string();
    let name = next("layer name")?.to_string();
    let count = |s: &str, what: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("{ty} {name}: bad {what} count {s:?}"))
    };
    let nb = count(next("bottom count")?, "bottom")?;
    let nt = count(next("top count")?, "top")?;
    let mut blobs = Vec::new();
    for _ in 0..nb + nt {
        blobs.push(
            next("blob name")
                .map_err(|e| format!("{ty} {name}: {e} ({nb} bottoms and {nt} tops expected)"))?
                .to_string(),
        );
    }
    let tops = blobs.split_off(nb);
    let mut params: Vec<Param> = Vec::new();
    let mut p = rest.trim_start();
    while !p.is_empty() {
        let (param, after) = parse_param(p).map_err(|e| format!("{ty} {name}: {e}"))?;
        if params.iter().any(|q| q.id == param.id) {
            return Err(format!("{ty} {name}: param {} given twice", param.id));
        }
        params.push(param);
        p = after.trim_start();
    }
    Ok(Layer {
        ty,
        name,
        bottoms: blobs,
        tops,
        params,
    })
}

fn is_float_text(s: &str) -> bool {
    s.contains(['.', 'e', 'E'])
}

fn parse_int(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad int {s:?}"));
    }
    s.parse::<i32>()
        .map_err(|_| format!("int {s:?} out of range"))
}

fn parse_float(s: &str) -> Result<f32, String> {
    // Rust accepts "inf", "nan" and the like; ncnn does not.
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b"eE+-.".contains(&b))
    {
        return Err(format!("bad float {s:?}"));
    }
    let v = s.parse::<f32>().map_err(|_| format!("bad float {s:?}"))?;
    if !v.is_finite() {
        return Err(format!("float {s:?} out of range"));
    }
    Ok(v)
}

/// Numbers of an array; all ints or all floats (decided like ncnn: by the
/// presence of `.`/`e` in any element).
fn parse_numbers(items: &[&str]) -> Result<Value, String> {
    if items.iter().any(|s| is_float_text(s)) {
        Ok(Value::FloatArray(
            items
                .iter()
                .map(|s| parse_float(s))
                .collect::<Result<_, _>>()?,
        ))
    } else {
        Ok(Value::IntArray(
            items
                .iter()
                .map(|s| parse_int(s))
                .collect::<Result<_, _>>()?,
        ))
    }
}

/// Parses one param at the start of `s`; returns it and the rest of the line.
fn parse_param(s: &str) -> Result<(Param, &str), String> {
    let eq = s.find('=').ok_or_else(|| {
        format!(
            "param {:?} has no `=`",
            s.split_whitespace().next().unwrap_or("")
        )
    })?;
    let raw_id = &s[..eq];
    if raw_id.contains(char::is_whitespace) {
        return Err(format!("param {raw_id:?} has no `=`"));
    }
    let id = parse_int(raw_id).map_err(|_| format!("bad param id {raw_id:?}"))?;
    let v = &s[eq + 1..];
    // String value: quoted (may hold spaces) or starting with a letter.
    if let Some(quoted) = v.strip_prefix('"') {
        let close = quoted
            .find('"')
            .ok_or_else(|| format!("param {id}: unterminated string"))?;
        let end = eq + 1 + close + 2;
        let after = &s[end..];
        if !after.is_empty() && !after.starts_with(char::is_whitespace) {
            return Err(format!("param {id}: text after the closing quote"));
        }
        return Ok((
            Param {
                id,
                value: Value::Str(quoted[..close].to_string()),
                text: s[..end].to_string(),
            },
            after,
        ));
    }
    let end = v.find(char::is_whitespace).unwrap_or(v.len());
    let (token, after) = (&v[..end], &v[end..]);
    let text = s[..eq + 1 + end].to_string();
    if token.is_empty() {
        return Err(format!("param {id} has no value"));
    }
    if token.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Ok((
            Param {
                id,
                value: Value::Str(token.to_string()),
                text,
            },
            after,
        ));
    }
    let value = if id <= -23300 {
        // Old-style array: -233xx=n,v1,...,vn.
        let mut items = token.split(',');
        let n = items.next().unwrap_or("");
        let n = parse_int(n).map_err(|_| format!("param {id}: bad array length {n:?}"))?;
        let items: Vec<&str> = items.collect();
        if n < 0 || items.len() != n as usize {
            return Err(format!(
                "param {id}: array says {n} elements, has {}",
                items.len()
            ));
        }
        let value = parse_numbers(&items).map_err(|e| format!("param {id}: {e}"))?;
        return Ok((
            Param {
                id: -(id + 23300),
                value,
                text,
            },
            after,
        ));
    } else if token.contains(',') {
        // New-style array: id=v1,v2,... (a trailing comma makes a one-element array).
        let token = token
            .strip_suffix(',')
            .filter(|t| !t.contains(','))
            .unwrap_or(token);
        let items: Vec<&str> = token.split(',').collect();
        if items.iter().any(|s| s.is_empty()) {
            return Err(format!("param {id}: empty array element"));
        }
        parse_numbers(&items).map_err(|e| format!("param {id}: {e}"))?
    } else if is_float_text(token) {
        Value::Float(parse_float(token).map_err(|e| format!("param {id}: {e}"))?)
    } else {
        Value::Int(parse_int(token).map_err(|e| format!("param {id}: {e}"))?)
    };
    if id < 0 {
        return Err(format!("bad param id {id}"));
    }
    Ok((Param { id, value, text }, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNNX: &str = "7767517
4 5
Input                    in0                      0 1 in0
Split                    splitncnn_0              1 2 in0 1 2
Reduction                sum_0                    1 1 1 3 0=0 1=0 -23303=1,0 4=1 5=1
BinaryOp                 div_1                    2 1 2 3 out0 0=3 2=1.000000e-10
";

    #[test]
    fn parses_and_round_trips_pnnx_text() {
        let f = ParamFile::parse(PNNX).unwrap();
        assert_eq!(f.layers.len(), 4);
        let red = &f.layers[2];
        assert_eq!((red.ty.as_str(), red.name.as_str()), ("Reduction", "sum_0"));
        assert_eq!(red.bottoms, ["1"]);
        assert_eq!(red.tops, ["3"]);
        assert_eq!(red.int_array(3).unwrap(), [0]);
        assert_eq!(red.int(4, 0), Ok(1));
        assert_eq!(red.int(1, 1), Ok(0));
        assert_eq!(f.layers[3].float(2, 0.0), Ok(1e-10));
        assert_eq!(f.to_text(), PNNX);
    }

    #[test]
    fn value_kinds() {
        let f = ParamFile::parse(
            "7767517\n2 2\nInput data 0 1 data\nX x 1 1 data y 0=1 1=2.5 2=1e-3 -23304=2,1.0,2 5=3,4,5 6=7, 7=\"a b\" 8=abc 9=-0\n",
        )
        .unwrap();
        let l = &f.layers[1];
        let v = |id| l.param(id).unwrap().value.clone();
        assert_eq!(v(0), Value::Int(1));
        assert_eq!(v(1), Value::Float(2.5));
        assert_eq!(v(2), Value::Float(1e-3));
        assert_eq!(v(4), Value::FloatArray(vec![1.0, 2.0]));
        assert_eq!(v(5), Value::IntArray(vec![3, 4, 5]));
        assert_eq!(v(6), Value::IntArray(vec![7]));
        assert_eq!(v(7), Value::Str("a b".into()));
        assert_eq!(v(8), Value::Str("abc".into()));
        assert_eq!(v(9), Value::Int(0));
        // Written back token by token.
        assert!(
            l.to_line()
                .ends_with("0=1 1=2.5 2=1e-3 -23304=2,1.0,2 5=3,4,5 6=7, 7=\"a b\" 8=abc 9=-0"),
            "{}",
            l.to_line()
        );
        assert_eq!(Param::float(1, 1e-10).text(), "1=1e-10");
        assert_eq!(
            parse_param(Param::float(1, 0.1f32 + 0.2).text())
                .unwrap()
                .0
                .value,
            Value::Float(0.1f32 + 0.2)
        );
    }

    fn line_err(text: &str) -> (usize, String) {
        match ParamFile::parse(text) {
            Err(ModelError::Param { line, msg }) => (line, msg),
            other => panic!("expected a param error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn refuses_malformed_files() {
        assert!(line_err("").1.contains("empty"));
        assert!(line_err("7767518\n1 1\nInput data 0 1 data\n")
            .1
            .contains("bad magic"));
        assert!(line_err("7767517\n2 1\nInput data 0 1 data\n")
            .1
            .contains("says 2 layers"));
        assert!(line_err("7767517\n1 2\nInput data 0 1 data\n")
            .1
            .contains("says 2 blobs"));
        assert!(line_err("7767517\nx 2\nInput data 0 1 data\n")
            .1
            .contains("bad layer count"));
        let (line, msg) = line_err("7767517\n2 2\nInput data 0 1 data\nReLU r 1 1 nothere out\n");
        assert_eq!(line, 4);
        assert!(msg.contains("\"nothere\""), "{msg}");
        assert!(
            line_err("7767517\n2 1\nInput data 0 1 data\nReLU r 1 1 data data\n")
                .1
                .contains("second time")
        );
        assert!(
            line_err("7767517\n2 2\nInput data 0 1 data\nReLU r 1 1 data\n")
                .1
                .contains("missing blob name")
        );
        assert!(
            line_err("7767517\n2 2\nInput data 0 1 data\nReLU r x 1 data out\n")
                .1
                .contains("bad bottom count")
        );
        for bad in [
            "0=1x",
            "0=1.0.0e",
            "1=-e5",
            "0=99999999999",
            "-23303=2,1",
            "-23303=1,1,2",
            "3=1,,2",
            "0=1 0=2",
            "x=1",
            "0",
            "7=\"open",
            "1=-inf",
            "1=1e99",
        ] {
            let text = format!("7767517\n2 2\nInput data 0 1 data\nReLU r 1 1 data out {bad}\n");
            let (line, msg) = line_err(&text);
            assert_eq!(line, 4, "{bad}: {msg}");
        }
    }
}
