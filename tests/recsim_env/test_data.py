import numpy as np
import pytest

from recsim_env.data import AtomicFileError, load_dataset, read_atomic_file, resolve_dataset_dir
from tests.conftest import write_atomic


def test_ml100k_resolves_inside_recbole_wheel(ml100k):
    assert "recbole" in str(resolve_dataset_dir("ml-100k")) and "dataset_example" in str(ml100k.path)
    assert (ml100k.n_users, ml100k.n_items, ml100k.n_interactions) == (943, 1682, 100000)
    assert ml100k.watch_ratio_source == "rating proxy"


def test_histories_are_chronological_and_complete(ml100k):
    for u in range(0, ml100k.n_users, 97):
        h = ml100k.history(u)
        assert np.all(np.diff(ml100k.inter_time[h]) >= 0)
        assert np.all(ml100k.inter_user[h] == u)
    assert ml100k.user_ptr[-1] == ml100k.n_interactions


def test_user_split_is_disjoint_seeded_and_covers_everyone(ml100k):
    parts = [set(ml100k.users(s)) for s in ("train", "valid", "test")]
    assert sum(map(len, parts)) == ml100k.n_users and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert abs(len(parts[0]) / ml100k.n_users - 0.8) < 0.01
    other = load_dataset("ml-100k", split_seed=7)
    assert not np.array_equal(other.split, ml100k.split)
    assert np.array_equal(load_dataset("ml-100k").split, ml100k.split)
    with pytest.raises(ValueError, match="split must be one of"):
        ml100k.users("holdout")


def test_rating_proxy_maps_stars_to_watch_ratio(ml100k):
    r, w = ml100k.inter_rating, ml100k.inter_watch_ratio
    assert np.allclose(w, (r - 1) / 4)
    skip = w < ml100k.thresholds.skip_below
    like = w >= ml100k.thresholds.like_at
    assert np.array_equal(skip, r <= 2) and np.array_equal(like, r >= 4)
    assert np.allclose(ml100k.rating_of_ratio(w), r)


def test_directory_dataset_with_real_watch_ratio(tiny_playtime_dataset):
    ds = load_dataset(tiny_playtime_dataset)
    assert ds.name == "tiny" and ds.n_users == 20 and ds.n_items == 30
    assert ds.watch_ratio_source == "play_time/duration" and not ds.has_ratings
    assert np.all((ds.inter_watch_ratio >= 0) & (ds.inter_watch_ratio <= 1))
    assert "class" in ds.item_fields and "gender" in ds.user_fields


GOOD_INTER = "user_id:token\titem_id:token\trating:float\n1\t10\t4\n2\t11\t5\n"


@pytest.mark.parametrize(
    "inter, match",
    [
        ("item_id:token\trating:float\n10\t4\n", r"tiny.inter, line 1: required field\(s\) \['user_id'\]"),
        ("user_id:token\titem_id:token\trating:float\n1\t10\t4\n2\t11\tfive\n", r"tiny.inter, line 3, field 'rating': 'five' is not a number"),
        ("", r"tiny.inter, line 1: file is empty"),
        ("user_id:token\titem_id:token\n", r"header only, no data rows"),
        ("user_id:token\titem_id:token\n1\t10\t3\n", r"line 2: expected 2 tab-separated fields"),
        ("user_id:token\titem_id:int\n1\t10\n", r"line 1, column 2: header field 'item_id:int'"),
        ("user_id:token\titem_id:token\trating:float\n1\t10\t4\n1\t99\t4\n", r"tiny.inter, line 3, field 'item_id': id '99' is not listed in .*tiny.item"),
        ("user_id:token\titem_id:token\trating:float\n1\t10\tnan\n", r"line 2, field 'rating': 'nan' is not finite"),
        ("\nuser_id:token\titem_id:token\n1\t10\n", r"tiny.inter, line 1: the first line is blank"),
        ("user_id:token_seq\titem_id:token\n1\t10\n", r"line 1, field 'user_id': an id field must have type token"),
        ("user_id:token\titem_id:token\n1 \t10\n", r"line 2, field 'user_id': id '1 ' has leading or trailing whitespace"),
        ("user_id:token\titem_id:token\n1\t10\n\t11\n", r"line 3, field 'user_id': id '' is empty"),
        ("user_id:token\titem_id:token\n1\t10\n2\t1\x001\n", r"tiny.inter, line 3: contains a NUL byte"),
        ("user_id:token\titem_id:token\tplay_time:float\tduration:float\n1\t10\t-5\t60\n",
         r"line 2, field 'play_time': -5.0 must be >= 0"),
    ],
)
def test_malformed_files_name_file_line_and_field(tmp_path, inter, match):
    d = write_atomic(tmp_path, "tiny", {"inter": inter, "item": "item_id:token\n10\n11\n"})
    with pytest.raises(AtomicFileError, match=match):
        load_dataset(d)


def test_missing_dataset_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected .*nothing.inter"):
        load_dataset(tmp_path / "nothing")


def test_read_atomic_file_types(tmp_path):
    d = write_atomic(tmp_path, "t", {"item": "item_id:token\ttags:token_seq\temb:float_seq\na\tx y\t1 2.5\n"})
    table = read_atomic_file(d / "t.item")
    assert table.columns["tags"] == [["x", "y"]] and table.columns["emb"] == [[1.0, 2.5]] and table.line_numbers == [2]


def test_duplicate_item_id_names_line(tmp_path):
    d = write_atomic(tmp_path, "tiny", {"inter": GOOD_INTER, "item": "item_id:token\n10\n11\n10\n"})
    with pytest.raises(AtomicFileError, match=r"tiny.item, line 4, field 'item_id': id '10' appears on more than one line"):
        load_dataset(d)


def test_utf8_bom_is_dropped(tmp_path):
    d = write_atomic(tmp_path, "bom", {})
    (d / "bom.inter").write_bytes("\ufeff".encode() + GOOD_INTER.encode())
    ds = load_dataset(d)
    assert ds.user_tokens == ["1", "2"] and ds.n_interactions == 2


def test_latin1_file_names_file_line_and_encoding(tmp_path):
    d = write_atomic(tmp_path, "latin", {"inter": GOOD_INTER})
    (d / "latin.item").write_bytes("item_id:token\ttitle:token_seq\n10\tAmelie\n11\tAm\xe9lie\n".encode("latin-1"))
    with pytest.raises(AtomicFileError, match=r"latin.item, line 3: byte .* is not UTF-8.*iconv -f latin1 -t utf-8"):
        load_dataset(d)


def test_load_cache_sees_edited_files(tmp_path):
    import os

    d = write_atomic(tmp_path, "edit", {"inter": GOOD_INTER})
    assert load_dataset(d).n_interactions == 2
    assert load_dataset(d) is load_dataset(d)  # unchanged files: cached
    f = d / "edit.inter"
    f.write_text(GOOD_INTER + "3\t12\t1\n")
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse file-system clocks
    assert load_dataset(d).n_interactions == 3


def test_fingerprint_follows_content(tmp_path):
    a = load_dataset(write_atomic(tmp_path / "a", "x", {"inter": GOOD_INTER}))
    b = load_dataset(write_atomic(tmp_path / "b", "x", {"inter": GOOD_INTER}))
    c = load_dataset(write_atomic(tmp_path / "c", "x", {"inter": GOOD_INTER.replace("\t5\n", "\t4\n")}))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
