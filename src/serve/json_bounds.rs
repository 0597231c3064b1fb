//! How much structure a JSON text holds, counted before it is decoded (pure).
//!
//! Decoding allocates per value: `{}` is two bytes of text and about a hundred bytes as a
//! struct or a map, so a 4 MiB body of `[{},{},...]` costs hundreds of MiB once decoded. This
//! counts the structural characters outside strings (`{`, `[`, `,` and `:`, about two per
//! value) in one pass over the bytes, without allocating and without recursion, so a text can
//! be refused before any of it is decoded. It does not validate the text: the decoder does.

/// The most structure a text may have.
#[derive(Clone, Copy, Debug)]
pub struct JsonBounds {
    /// Structural characters (`{ [ , :`) outside strings.
    pub max_structure: usize,
    /// Nesting of objects and arrays.
    pub max_depth: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonShapeError {
    #[error("the JSON body has more than {0} values, more than a valid request needs")]
    TooManyValues(usize),
    #[error("the JSON body nests deeper than {0} levels")]
    TooDeep(usize),
}

/// How much structure `text` has, when it stays within `bounds`.
pub fn check(text: &[u8], bounds: JsonBounds) -> Result<usize, JsonShapeError> {
    let (mut structure, mut depth) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > bounds.max_depth {
                    return Err(JsonShapeError::TooDeep(bounds.max_depth));
                }
                structure += 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' | b':' => structure += 1,
            _ => continue,
        }
        if structure > bounds.max_structure {
            return Err(JsonShapeError::TooManyValues(bounds.max_structure / 2));
        }
    }
    Ok(structure)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: JsonBounds = JsonBounds {
        max_structure: 10,
        max_depth: 3,
    };

    #[test]
    fn structure_outside_strings_is_counted() {
        assert_eq!(check(br#"{"a":[1,2,3],"b":{"c":null}}"#, BOUNDS), Ok(9));
        assert_eq!(
            check(b"[{},{},{},{},{},{},{}]", BOUNDS),
            Err(JsonShapeError::TooManyValues(5))
        );
        assert_eq!(
            check(br#"{"a": "[[[[,,,,,:::::{{{{\"]]]]"}"#, BOUNDS),
            Ok(2),
            "brackets, commas and escaped quotes inside a string do not count"
        );
        assert_eq!(check(b"[[[[1]]]]", BOUNDS), Err(JsonShapeError::TooDeep(3)));
        assert_eq!(check(b"[[[1]]],[[[1]]]", BOUNDS), Ok(7), "depth, not total brackets");
    }

    #[test]
    fn any_bytes_are_judged_without_a_panic() {
        for text in [&b""[..], b"\"", b"\\", b"]]]]}}}", b"\"\\\"", &[0xff, 0xfe, b'{']] {
            let _ = check(text, BOUNDS);
        }
    }
}
