"""Where parcels go: a table of real provinces and cities, name normalisation and parcel routes.

The table is small but real: coordinates are approximate city centres, districts exist. It
includes the contract's remote provinces (内蒙古, 甘肃, 青海, 宁夏, 海南) and very remote ones
(新疆, 西藏), and cities whose names end in 市, 地区, 盟 or 自治州, so that the short and long
forms of a name (杭州 / 杭州市, 喀什 / 喀什地区) exercise the contract's normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from processors import geo as _geo
from processors.config import DEFAULT_RULES_PATH, parse_rules_toml

NORMAL, REMOTE, VERY_REMOTE = "normal", "remote", "very_remote"
# the labels assume the packaged default thresholds (the worker's own file, read here as it ships)
_RULES = parse_rules_toml(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
REMOTE_PROVINCES = _RULES.remote_provinces
VERY_REMOTE_PROVINCES = _RULES.very_remote_provinces

# One normalisation for worker and simulator (processors.geo, tested on hand-written cases).
normalise_city = _geo.normalise_city
normalise_province = _geo.normalise_province


def remoteness(province: str) -> str:
    """NORMAL, REMOTE or VERY_REMOTE for a recipient's province, by the default thresholds."""
    return _geo.remoteness(province, REMOTE_PROVINCES, VERY_REMOTE_PROVINCES)


@dataclass(frozen=True)
class City:
    """A prefecture-level city: its full name, centre and a few real districts."""

    name: str
    lat: float
    lon: float
    districts: tuple[str, ...]
    # a City and its Province refer to each other: _build sets this right after the Province exists
    province: Province = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def short(self) -> str:
        """The colloquial form (`杭州`); 自治州 names have no short form that normalises equal."""
        if self.name.endswith("自治州"):
            return self.name
        return normalise_city(self.name)


@dataclass(frozen=True)
class Province:
    """A province with its full and short name, remoteness, share of buyers and cities."""

    name: str
    short: str
    weight: float
    cities: tuple[City, ...]

    @property
    def capital(self) -> City:
        """The provincial hub every inter-province parcel passes (the first city of the table)."""
        return self.cities[0]

    @property
    def remoteness(self) -> str:
        """NORMAL, REMOTE or VERY_REMOTE."""
        return remoteness(self.name)


def _c(name: str, lat: float, lon: float, *districts: str) -> City:
    return City(name, lat, lon, districts)


_TABLE: tuple[tuple[str, str, float, tuple[City, ...]], ...] = (
    ("广东省", "广东", 10.0, (
        _c("广州市", 23.13, 113.26, "天河区", "越秀区", "海珠区", "白云区", "番禺区"),
        _c("深圳市", 22.54, 114.06, "南山区", "福田区", "宝安区", "龙岗区"),
        _c("东莞市", 23.02, 113.75, "南城街道", "东城街道", "虎门镇"),
        _c("佛山市", 23.02, 113.12, "禅城区", "南海区", "顺德区"),
        _c("汕头市", 23.35, 116.68, "金平区", "龙湖区"),
        _c("湛江市", 21.27, 110.36, "赤坎区", "霞山区"))),
    ("浙江省", "浙江", 6.5, (
        _c("杭州市", 30.27, 120.16, "西湖区", "上城区", "拱墅区", "滨江区", "余杭区", "萧山区"),
        _c("宁波市", 29.87, 121.55, "海曙区", "鄞州区", "江北区"),
        _c("温州市", 28.00, 120.70, "鹿城区", "瓯海区", "龙湾区"),
        _c("金华市", 29.08, 119.65, "婺城区", "金东区", "义乌市"),
        _c("绍兴市", 30.00, 120.58, "越城区", "柯桥区"))),
    ("江苏省", "江苏", 7.0, (
        _c("南京市", 32.06, 118.80, "玄武区", "鼓楼区", "江宁区"),
        _c("苏州市", 31.30, 120.59, "姑苏区", "吴中区", "工业园区"),
        _c("无锡市", 31.49, 120.31, "梁溪区", "滨湖区"),
        _c("徐州市", 34.26, 117.18, "鼓楼区", "云龙区"),
        _c("南通市", 32.00, 120.86, "崇川区", "通州区"))),
    ("上海市", "上海", 3.0, (
        _c("上海市", 31.23, 121.47, "浦东新区", "徐汇区", "闵行区", "静安区"),)),
    ("北京市", "北京", 3.0, (
        _c("北京市", 39.90, 116.40, "朝阳区", "海淀区", "丰台区", "东城区"),)),
    ("天津市", "天津", 1.5, (
        _c("天津市", 39.13, 117.20, "和平区", "南开区", "滨海新区"),)),
    ("重庆市", "重庆", 2.5, (
        _c("重庆市", 29.56, 106.55, "渝中区", "江北区", "沙坪坝区", "九龙坡区"),)),
    ("山东省", "山东", 6.0, (
        _c("济南市", 36.65, 117.12, "历下区", "市中区", "槐荫区"),
        _c("青岛市", 36.07, 120.38, "市南区", "崂山区", "黄岛区"),
        _c("临沂市", 35.10, 118.36, "兰山区", "罗庄区"),
        _c("烟台市", 37.46, 121.45, "芝罘区", "莱山区"))),
    ("河南省", "河南", 5.0, (
        _c("郑州市", 34.75, 113.62, "金水区", "中原区", "二七区"),
        _c("洛阳市", 34.62, 112.45, "西工区", "洛龙区"),
        _c("南阳市", 33.00, 112.53, "宛城区", "卧龙区"))),
    ("湖北省", "湖北", 4.0, (
        _c("武汉市", 30.59, 114.30, "武昌区", "洪山区", "江汉区"),
        _c("宜昌市", 30.69, 111.29, "西陵区", "伍家岗区"),
        _c("襄阳市", 32.01, 112.12, "襄城区", "樊城区"))),
    ("湖南省", "湖南", 4.0, (
        _c("长沙市", 28.23, 112.94, "岳麓区", "芙蓉区", "天心区"),
        _c("株洲市", 27.83, 113.13, "天元区", "芦淞区"),
        _c("岳阳市", 29.36, 113.13, "岳阳楼区"))),
    ("四川省", "四川", 5.0, (
        _c("成都市", 30.57, 104.07, "武侯区", "锦江区", "青羊区", "成华区"),
        _c("绵阳市", 31.47, 104.68, "涪城区", "游仙区"),
        _c("南充市", 30.84, 106.11, "顺庆区", "高坪区"))),
    ("福建省", "福建", 4.0, (
        _c("福州市", 26.07, 119.30, "鼓楼区", "台江区"),
        _c("厦门市", 24.48, 118.09, "思明区", "湖里区"),
        _c("泉州市", 24.87, 118.68, "丰泽区", "鲤城区", "晋江市"))),
    ("河北省", "河北", 4.0, (
        _c("石家庄市", 38.04, 114.51, "长安区", "桥西区"),
        _c("保定市", 38.87, 115.46, "竞秀区", "莲池区"),
        _c("唐山市", 39.63, 118.18, "路北区", "路南区"))),
    ("陕西省", "陕西", 2.5, (
        _c("西安市", 34.34, 108.94, "雁塔区", "碑林区", "未央区"),
        _c("宝鸡市", 34.36, 107.24, "渭滨区", "金台区"),
        _c("咸阳市", 34.33, 108.71, "秦都区", "渭城区"))),
    ("安徽省", "安徽", 3.5, (
        _c("合肥市", 31.82, 117.23, "蜀山区", "包河区"),
        _c("芜湖市", 31.35, 118.43, "镜湖区", "鸠江区"),
        _c("阜阳市", 32.89, 115.81, "颍州区"))),
    ("广西壮族自治区", "广西", 2.5, (
        _c("南宁市", 22.82, 108.37, "青秀区", "西乡塘区"),
        _c("桂林市", 25.27, 110.29, "秀峰区", "七星区"),
        _c("柳州市", 24.33, 109.41, "城中区", "鱼峰区"))),
    ("云南省", "云南", 2.0, (
        _c("昆明市", 25.04, 102.71, "五华区", "盘龙区"),
        _c("大理白族自治州", 25.61, 100.27, "大理市"),
        _c("曲靖市", 25.49, 103.80, "麒麟区"))),
    ("辽宁省", "辽宁", 2.5, (
        _c("沈阳市", 41.80, 123.43, "和平区", "沈河区"),
        _c("大连市", 38.91, 121.61, "中山区", "沙河口区"))),
    ("黑龙江省", "黑龙江", 1.5, (
        _c("哈尔滨市", 45.80, 126.53, "南岗区", "道里区"),
        _c("大庆市", 46.59, 125.10, "萨尔图区"))),
    ("吉林省", "吉林", 1.2, (
        _c("长春市", 43.82, 125.32, "朝阳区", "南关区"),
        _c("延边朝鲜族自治州", 42.90, 129.50, "延吉市"))),
    ("江西省", "江西", 2.5, (
        _c("南昌市", 28.68, 115.86, "东湖区", "红谷滩区"),
        _c("赣州市", 25.83, 114.93, "章贡区"))),
    ("贵州省", "贵州", 1.8, (
        _c("贵阳市", 26.65, 106.63, "云岩区", "南明区"),
        _c("遵义市", 27.73, 106.93, "红花岗区"))),
    ("山西省", "山西", 1.8, (
        _c("太原市", 37.87, 112.55, "小店区", "迎泽区"),
        _c("大同市", 40.08, 113.30, "平城区"))),
    # remote by the contract's defaults
    ("内蒙古自治区", "内蒙古", 1.0, (
        _c("呼和浩特市", 40.84, 111.75, "新城区", "赛罕区"),
        _c("包头市", 40.66, 109.84, "昆都仑区", "青山区"),
        _c("鄂尔多斯市", 39.61, 109.78, "东胜区", "康巴什区"),
        _c("赤峰市", 42.26, 118.89, "红山区"),
        _c("锡林郭勒盟", 43.93, 116.05, "锡林浩特市"),
        _c("阿拉善盟", 38.84, 105.73, "阿拉善左旗"))),
    ("甘肃省", "甘肃", 1.0, (
        _c("兰州市", 36.06, 103.83, "城关区", "七里河区"),
        _c("天水市", 34.58, 105.72, "秦州区"),
        _c("酒泉市", 39.73, 98.49, "肃州区"),
        _c("临夏回族自治州", 35.60, 103.21, "临夏市"))),
    ("青海省", "青海", 0.4, (
        _c("西宁市", 36.62, 101.78, "城中区", "城西区"),
        _c("海东市", 36.50, 102.10, "乐都区"),
        _c("海西蒙古族藏族自治州", 37.37, 97.37, "格尔木市", "德令哈市"))),
    ("宁夏回族自治区", "宁夏", 0.5, (
        _c("银川市", 38.49, 106.23, "兴庆区", "金凤区"),
        _c("石嘴山市", 39.02, 106.38, "大武口区"),
        _c("吴忠市", 37.99, 106.20, "利通区"))),
    ("海南省", "海南", 0.8, (
        _c("海口市", 20.04, 110.32, "龙华区", "美兰区"),
        _c("三亚市", 18.25, 109.51, "吉阳区", "天涯区"),
        _c("儋州市", 19.52, 109.58, "那大镇"))),
    # very remote by the contract's defaults
    ("新疆维吾尔自治区", "新疆", 1.0, (
        _c("乌鲁木齐市", 43.83, 87.62, "天山区", "沙依巴克区", "新市区"),
        _c("喀什地区", 39.47, 75.99, "喀什市", "疏附县"),
        _c("伊犁哈萨克自治州", 43.92, 81.32, "伊宁市"),
        _c("克拉玛依市", 45.58, 84.89, "克拉玛依区"),
        _c("阿克苏地区", 41.17, 80.26, "阿克苏市"),
        _c("哈密市", 42.82, 93.51, "伊州区"))),
    ("西藏自治区", "西藏", 0.4, (
        _c("拉萨市", 29.65, 91.14, "城关区", "堆龙德庆区"),
        _c("日喀则市", 29.27, 88.88, "桑珠孜区"),
        _c("林芝市", 29.65, 94.36, "巴宜区"),
        _c("那曲市", 31.48, 92.05, "色尼区"),
        _c("阿里地区", 32.50, 80.10, "噶尔县"))),
)


def _build() -> tuple[Province, ...]:
    provinces = []
    for name, short, weight, cities in _TABLE:
        province = Province(name, short, weight, cities)
        for city in cities:
            object.__setattr__(city, "province", province)
        provinces.append(province)
    return tuple(provinces)


PROVINCES: tuple[Province, ...] = _build()
PROVINCE_WEIGHTS: tuple[float, ...] = tuple(p.weight for p in PROVINCES)
_CITIES = {city.name: city for p in PROVINCES for city in p.cities}


def city(name: str) -> City:
    """The table's city of that full name (KeyError if it is not in the table)."""
    return _CITIES[name]


# Where online shops ship from: the big e-commerce clusters.
ORIGIN_CITIES: tuple[str, ...] = (
    "杭州市", "金华市", "广州市", "深圳市", "东莞市", "泉州市", "苏州市", "上海市", "临沂市",
    "汕头市", "温州市", "宁波市", "佛山市", "成都市", "武汉市",
)

# Gateways that parcels to a province pass unless they start there or beyond.
_GATEWAYS = {"新疆": "兰州市", "西藏": "成都市", "海南": "湛江市", "青海": "兰州市"}
# National sorting hubs that split the longest trunk routes.
_NATIONAL_HUBS = ("郑州市", "武汉市", "西安市")
_LONG_TRUNK_KM = 1300.0


def distance_km(a: City, b: City) -> float:
    """Road distance between two cities, estimated as 1.3 times the great-circle distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 1.3 * 2 * 6371.0 * math.asin(math.sqrt(h))


def route(origin: City, destination: City) -> list[City]:
    """The sorting centres a parcel passes after leaving `origin`, ending at `destination`."""
    stops: list[City] = []
    if origin is destination:
        return stops

    def add(stop: City) -> None:
        last = stops[-1] if stops else origin
        if stop is not last:
            stops.append(stop)

    add(origin.province.capital)
    gateway_name = _GATEWAYS.get(destination.province.short)
    gateway = _CITIES[gateway_name] if gateway_name else None
    if gateway is not None and origin.province in (gateway.province, destination.province):
        gateway = None
    if destination.province is not origin.province:
        target = gateway or destination.province.capital
        last = stops[-1] if stops else origin
        direct = distance_km(last, target)
        if direct > _LONG_TRUNK_KM:
            best = min((_CITIES[h] for h in _NATIONAL_HUBS),
                       key=lambda h: distance_km(last, h) + distance_km(h, target))
            if best.province not in (last.province, target.province) and \
                    distance_km(last, best) + distance_km(best, target) < 1.25 * direct:
                add(best)
        if gateway is not None:
            add(gateway)
        add(destination.province.capital)
    add(destination)
    return stops
