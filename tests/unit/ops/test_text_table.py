from streamgen.ops.text_table import text_table


def test_columns_are_as_wide_as_their_widest_cell_without_trailing_spaces() -> None:
    table = text_table([("ID", "ERROR"), ("request-1", "x"), ("r2", "validate/DEADLINE")])
    assert table.splitlines() == [
        "ID         ERROR",
        "request-1  x",
        "r2         validate/DEADLINE",
    ]
