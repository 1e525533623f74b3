//! Go's `text/tabwriter` column alignment, for output that must line up exactly as kubeadm's
//! (`tabwriter.NewWriter(w, minwidth, 4, padding, ' ', 0)`).
//!
//! Cells are tab-terminated; the text after a line's last tab is not part of any column. A
//! column block is a run of consecutive lines that all have a terminated cell in that column;
//! every cell of the block is padded with spaces to the block's widest cell plus `padding`,
//! and at least to `min_width`. Blocks nest column by column, as in Go's `Writer.format`.

/// Aligns `text` (lines ending in `\n`, cells separated by `\t`).
pub(crate) fn align(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    let layout = Layout { min_width, padding };
    layout.format(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

struct Layout {
    min_width: usize,
    padding: usize,
}

impl Layout {
    fn format(
        &self,
        lines: &[Vec<&str>],
        first: usize,
        end: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let has_cell = |i: usize| lines.get(i).is_some_and(|l| column + 1 < l.len());
        let mut start = first;
        let mut this = first;
        while this < end {
            if !has_cell(this) {
                this += 1;
                continue;
            }
            write_lines(lines, start, this, widths, out);
            start = this;
            let mut width = self.min_width;
            while this < end && has_cell(this) {
                let cell = lines[this].get(column).map_or(0, |c| c.chars().count());
                width = width.max(cell + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(lines, start, this, widths, out);
            widths.pop();
            start = this;
        }
        write_lines(lines, start, end, widths, out);
    }
}

fn write_lines(lines: &[Vec<&str>], first: usize, end: usize, widths: &[usize], out: &mut String) {
    for line in lines.iter().take(end).skip(first) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                let pad = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell_plus_padding() {
        let text = "CERTIFICATE\tEXPIRES\tX\na-much-longer-name\tJan\tno      \n";
        let got = align(text, 10, 3);
        assert_eq!(
            got,
            "CERTIFICATE          EXPIRES   X\na-much-longer-name   Jan       no      \n"
        );
    }

    #[test]
    fn a_line_without_tabs_ends_the_column_block() {
        let text = "a\tb\n\nlonger-cell\tc\n";
        assert_eq!(align(text, 0, 1), "a b\n\nlonger-cell c\n");
    }

    #[test]
    fn empty_terminated_cells_are_padded() {
        let text = "name\tx\n!MISSING! z\t\t\n";
        assert_eq!(
            align(text, 10, 3),
            format!("name          x\n!MISSING! z{}\n", " ".repeat(13))
        );
    }
}
