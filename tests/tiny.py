"""Tiny configurations of the paper's builders, for fast tests on any backend."""

RNA_TINY = dict(
    lstm_units=4,
    dense_units=3,
    first_filters=6,
    block1=((5, 4), (3, 2)),
    block2=((3, 4),),
    block3=((3, 4),),
    side_filters=2,
)

CONTACT_TINY = dict(
    lstm_units=4,
    dense_units=3,
    first_filters=6,
    blocks=(((5, 4), (3, 2)), ((3, 4),)),
    final_blocks=(((3, 4),),),
)
