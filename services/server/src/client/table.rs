//! Plain-text tables for people: columns aligned on the display width of
//! their cells (a Chinese character takes two columns), two spaces apart,
//! no borders, so that `grep` and `awk` still work on them.

/// Columns wide enough for CJK text: a character of the East Asian wide
/// and fullwidth ranges takes two terminal columns, others one.
pub fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let c = u32::from(c);
    let wide = matches!(c,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFD);
    if c < 0x20 || (0x7F..0xA0).contains(&c) {
        0
    } else if wide {
        2
    } else {
        1
    }
}

/// A table: a header row and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are kept.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// How many rows (without the header).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in a newline; the
    /// last column is not padded. A line break inside a cell is shown as a
    /// space so that a row stays one line.
    pub fn render(&self) -> String {
        let clean = |s: &str| s.replace(['\n', '\r', '\t'], " ");
        let lines: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| clean(c)).collect())
            .collect();
        let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(display_width(cell));
            }
        }
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = line.get(i).map_or("", String::as_str);
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                if i + 1 < columns {
                    text.push_str(&" ".repeat(w - display_width(cell)));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Field names and values, one per line, the values aligned: how a single
/// record is shown.
pub fn fields<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> String {
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (format!("{}:", k.as_ref()), v.as_ref().to_owned()))
        .collect();
    let width = pairs
        .iter()
        .map(|(k, _)| display_width(k))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = " ".repeat(width - display_width(&k) + 1);
        // A multi-line value continues under the first line's value.
        let indent = format!("\n{}", " ".repeat(width + 1));
        out.push_str(format!("{k}{pad}{}", v.replace('\n', &indent)).trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_the_last_is_not_padded() {
        let mut t = Table::new(["ID", "CITY", "TITLE"]);
        t.row(["1", "hangzhou", "engineer"]);
        t.row(["22", "suzhou", "x"]);
        assert_eq!(
            t.render(),
            "ID  CITY      TITLE\n\
             1   hangzhou  engineer\n\
             22  suzhou    x\n"
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn chinese_characters_count_two_columns() {
        assert_eq!(display_width("高级工程师"), 10);
        assert_eq!(display_width("a张b"), 4);
        let mut t = Table::new(["TITLE", "LEVEL"]);
        t.row(["高级工程师", "4"]);
        t.row(["x", "5"]);
        assert_eq!(
            t.render(),
            "TITLE       LEVEL\n\
             高级工程师  4\n\
             x           5\n"
        );
    }

    #[test]
    fn short_rows_are_blank_filled_and_line_breaks_stay_on_the_row() {
        let mut t = Table::new(["A", "B", "C"]);
        t.row(["only a"]);
        t.row(["two\nlines", "b", "c"]);
        assert_eq!(
            t.render(),
            "A          B  C\n\
             only a\n\
             two lines  b  c\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(["ID", "STATUS"]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "ID  STATUS\n");
    }

    #[test]
    fn fields_align_values_and_indent_continuation_lines() {
        assert_eq!(
            fields([
                ("id", "abc"),
                ("status", "ACTIVE"),
                ("rules", "r1\nr2"),
                ("x", "")
            ]),
            "id:     abc\n\
             status: ACTIVE\n\
             rules:  r1\n        r2\n\
             x:\n"
        );
    }
}
