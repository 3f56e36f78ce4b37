from dpfd.sim.bfb_image import ImageVerifier, image_range, image_size, make_image, trailer


def test_image_is_deterministic_and_verifies_in_any_chunking() -> None:
    img = make_image("bf-bundle", 200_000)
    assert img == make_image("bf-bundle", 200_000)
    assert len(img) == image_size(200_000)
    for chunk in (1, 7, 4096, 65536, len(img)):
        v = ImageVerifier()
        for i in range(0, len(img), chunk):
            v.feed(img[i : i + chunk])
        assert v.ok() and v.size == len(img)


def test_ranges_match_the_whole_image() -> None:
    img = make_image("x", 150_000)
    tail = trailer("x", 150_000)
    for start, end in ((0, 10), (65530, 65600), (149_990, len(img)), (150_010, len(img)), (0, len(img))):
        assert image_range("x", 150_000, start, end, tail) == img[start:end]


def test_a_flipped_byte_or_truncation_fails_verification() -> None:
    img = bytearray(make_image("y", 70_000))
    img[1234] ^= 0xFF
    v = ImageVerifier()
    v.feed(bytes(img))
    assert not v.ok()
    v = ImageVerifier()
    v.feed(make_image("y", 70_000)[:-5])
    assert not v.ok()
